"""annotate.quality's dataclasses as JSON: shared by the batch and the annotator resources."""

from __future__ import annotations

from rest_framework import serializers

from annotate.quality import BatchQuality


class AnnotatorQualitySerializer(serializers.Serializer):
    """annotate.quality.AnnotatorQuality: one annotator's figures over some batches."""

    user_id = serializers.IntegerField(help_text="The annotator's user id, as in /api/annotators/{id}/quality/.")
    username = serializers.CharField()
    judgments = serializers.IntegerField(help_text="Pairwise judgments (the figures below are theirs).")
    rankings = serializers.IntegerField(
        default=0, help_text="Ranking judgments (their figures: /api/annotators/{id}/quality/)."
    )
    simulated = serializers.BooleanField(
        default=False, help_text="One of the simulated annotators (manage.py simulate_annotators), not a person."
    )
    median_seconds = serializers.FloatField(allow_null=True, help_text="Median time per item.")
    agreement = serializers.FloatField(
        allow_null=True, help_text="Share of comparable judgments that agree with the majority of the others."
    )
    comparable = serializers.IntegerField(help_text="Judgments on items where the others had a majority.")
    gold_accuracy = serializers.FloatField(allow_null=True, help_text="Share of gold items answered right.")
    gold_judgments = serializers.IntegerField()
    first_shown_share = serializers.FloatField(
        allow_null=True, help_text="Position bias: share choosing the response shown first."
    )
    first_shown_p_value = serializers.FloatField(allow_null=True, help_text="Two-sided binomial test against 1/2.")
    longer_share = serializers.FloatField(allow_null=True, help_text="Length bias: share choosing the longer response.")
    length_comparable = serializers.IntegerField(help_text="Judgments whose two responses differ in length.")
    slight_share = serializers.FloatField(allow_null=True, help_text='Share of "slightly better" answers.')
    flags = serializers.ListField(
        child=serializers.CharField(), help_text="Why the annotator is flagged; empty when not flagged."
    )
    flagged = serializers.BooleanField()


class PositionBiasSerializer(serializers.Serializer):
    """annotate.ranking_quality.PositionBias: the response shown first (A) ranked first, against chance."""

    rankings = serializers.IntegerField(help_text="Rankings with a recorded display order.")
    first_shown_first = serializers.IntegerField(help_text="Of those, how many ranked the response shown first best.")
    share = serializers.FloatField(allow_null=True)
    expected_share = serializers.FloatField(allow_null=True, help_text="Chance: 1/K without ties.")
    p_value = serializers.FloatField(allow_null=True, help_text="Two-sided binomial test against expected_share.")


class AnnotatorRankingQualitySerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    rankings = serializers.IntegerField()
    median_seconds = serializers.FloatField(allow_null=True)
    mean_tau = serializers.FloatField(allow_null=True, help_text="Mean Kendall's tau with the others' rankings.")
    tau_pairs = serializers.IntegerField()
    position_bias = PositionBiasSerializer()


class RankingQualitySerializer(serializers.Serializer):
    """annotate.ranking_quality.RankingQuality: agreement and position bias of a ranking batch."""

    rankings = serializers.IntegerField(help_text="Ranking judgments by annotators.")
    ranked_items = serializers.IntegerField()
    multiply_ranked = serializers.IntegerField(help_text="Items ranked by two annotators or more.")
    mean_tau = serializers.FloatField(
        allow_null=True, help_text="Mean Kendall's tau-b over every pair of rankings of the same item."
    )
    tau_pairs = serializers.IntegerField()
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, interval metric on ranks.")
    position_bias = PositionBiasSerializer()
    annotators = AnnotatorRankingQualitySerializer(many=True)


class BatchQualitySerializer(serializers.Serializer):
    """annotate.quality.BatchQuality: how far one batch's judgments agree."""

    batch = serializers.IntegerField(source="batch.pk")
    batch_name = serializers.CharField(source="batch.name")
    overlap = serializers.IntegerField(source="batch.overlap", help_text="Judgments wanted per item.")
    items = serializers.IntegerField()
    judged_items = serializers.IntegerField(help_text="Items with at least one judgment.")
    fully_judged = serializers.IntegerField(help_text="Items with as many judgments as the overlap asks for.")
    overlap_reached = serializers.FloatField(allow_null=True, help_text="Share of items fully judged.")
    judgments = serializers.IntegerField()
    mean_judgments_per_item = serializers.FloatField(allow_null=True)
    agreeing_pairs = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Pairs of judgments on the same item.")
    agreement = serializers.FloatField(allow_null=True, help_text="Share of pairs that pick the same response.")
    alpha = serializers.FloatField(allow_null=True, help_text="Krippendorff's alpha, ordinal, on the four-level scale.")
    annotators = AnnotatorQualitySerializer(many=True)
    flagged = serializers.SerializerMethodField(help_text="User ids of the flagged annotators.")
    rankings = RankingQualitySerializer(
        allow_null=True, help_text="Ranking batches: their figures (the pairwise ones above are then empty)."
    )

    def get_flagged(self, quality: BatchQuality) -> list[int]:
        return [annotator.user_id for annotator in quality.flagged]
