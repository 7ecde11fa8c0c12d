"""
A decision made from a fresh process, for the compare-and-set test.

Its own module, importing only the local registry: a spawned worker imports the module that
holds its function, and the test module would pull in Airflow (seconds, 50 times over).
"""

from __future__ import annotations

from airflow_provider_mlops.exceptions import ApprovalConflictError
from airflow_provider_mlops.registry.base import APPROVED, REJECTED
from airflow_provider_mlops.registry.local import LocalModelRegistry


def decide(home: str, group: str, index: int) -> str:
    """Approve (odd ``index``) or reject version 1.0.0; ``won:<status>:<who>`` or ``conflict``."""
    status = APPROVED if index % 2 else REJECTED
    try:
        LocalModelRegistry(home).set_approval(group, "1.0.0", status, by=f"person-{index}", reason=f"decision {index}")
    except ApprovalConflictError:
        return "conflict"
    return f"won:{status}:person-{index}"
