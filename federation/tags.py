"""Invalidation tags attached to cached source answers."""

# Warehouse list pages carry this tag: any warehouse change may move a row in or out of a page.
WAREHOUSE_LISTS = "list:warehouse"


def customer_tag(customer_id: int) -> str:
    return f"customer:{customer_id}"
