"""gaitsearch: find walking people by describing them.

The code lives in three layers, installed under this namespace from the repository's
top-level folders: ``gaitsearch.model`` (model/), ``gaitsearch.index`` (index/) and
``gaitsearch.service`` (service/). Dependencies point one way: service -> index -> model.
"""

__version__ = "0.1.0"
