"""Exporting a mixture: the canonical manifest (MIX.json), one writer per data loader, and
readers back.
"""
from __future__ import annotations
from ._manifest import (Manifest, manifest_from_dict, load_mixture, load_paths, load_doc_lengths, per_document_probabilities, token_shares_from_documents)
from ._writers import FORMATS, canonical_dict, export
from ._readers import parse_export

__all__ = [
    "Manifest",
    "manifest_from_dict",
    "load_mixture",
    "load_paths",
    "load_doc_lengths",
    "per_document_probabilities",
    "token_shares_from_documents",
    "FORMATS",
    "canonical_dict",
    "export",
    "parse_export",
]
