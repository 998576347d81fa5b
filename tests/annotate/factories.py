"""Small batches for the annotation tests."""

from annotate.models import Batch, Item


def make_batch(name: str = "b", n_items: int = 12, **fields) -> Batch:
    """A batch of `n_items` one-turn questions, each with a "first" and a "second" answer."""
    batch = Batch.objects.create(name=name, **fields)
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question number {i}?"}],
            response_1=f"first answer {i}",
            response_2=f"second answer {i}",
        )
        for i in range(n_items)
    )
    return batch


def make_ranking_batch(name: str = "r", n_items: int = 8, size: int = 4, **fields) -> Batch:
    """A ranking batch of `n_items` questions, each with `size` answers "answer k to i"."""
    batch = Batch.objects.create(name=name, kind=Batch.Kind.RANKING, ranking_size=size, **fields)
    Item.objects.bulk_create(
        Item(
            batch=batch,
            external_id=str(i),
            prompt=[{"role": "user", "content": f"Question number {i}?"}],
            response_1=f"answer 1 to {i}",
            response_2=f"answer 2 to {i}",
            more_responses=[f"answer {k} to {i}" for k in range(3, size + 1)],
        )
        for i in range(n_items)
    )
    return batch
