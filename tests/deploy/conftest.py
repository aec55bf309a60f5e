"""Fixtures of the deploy checks: the rendered overlays, built once per session."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.helpers import K8S, OVERLAYS, kustomize


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """overlay name -> its rendered objects, for every overlay under deploy/k8s/overlays."""
    return {overlay: kustomize(K8S / "overlays" / overlay) for overlay in OVERLAYS}
