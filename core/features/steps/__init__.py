"""Recipe step kinds, one module per family; importing this package registers them all in core.recipe.KINDS."""
from core.features.steps import (
    categorical,  # noqa: F401
    columns,  # noqa: F401
    numeric,  # noqa: F401
    relational,  # noqa: F401
    temporal,  # noqa: F401
)
