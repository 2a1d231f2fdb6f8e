"""Recipe step kinds, one module per family; importing this package registers them all in core.recipe.KINDS."""
from core.steps import (
    columns,  # noqa: F401
    numeric,  # noqa: F401
)
