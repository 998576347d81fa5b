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
