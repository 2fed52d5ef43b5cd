"""template.yaml as CloudFormation receives it: the SAM transform applied offline.

``sam deploy`` uploads the template and CloudFormation runs the ``AWS::Serverless-2016-10-31``
transform on it with the stack's parameter values. The same transform (samtranslator) runs here
through cfn-lint's wrapper, which already does what an offline run needs: local ``CodeUri`` /
``ContentUri`` paths stand in as S3 URIs, and AWS managed policy ARNs come from cfn-lint's own
list instead of an IAM call. What comes out is plain CloudFormation: every SAM function expanded
into its ``AWS::Lambda::Function``, its ``AWS::IAM::Role`` (SAM policy templates expanded into
statements), its event source mappings, the HTTP API's routes and so on, with the intrinsic
functions still unresolved (see :class:`devstack.template.Template` for resolving them).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.template import REGION, TemplateError, load_yaml


def expand(document: Mapping[str, Any], parameters: Mapping[str, Any] | None = None, region: str = REGION) -> dict[str, Any]:
    """The SAM transform of ``document`` (left unchanged) with ``parameters`` as the stack's values.

    TemplateError lists every reason the transform refused the template."""
    # cfn-lint's wrapper of samtranslator: imported here, since it takes about a second to import.
    from cfnlint.template.transforms._sam import Transform

    transform = Transform("template.yaml", copy.deepcopy(dict(document)), region)
    transform._parameters.update(parameters or {})
    saved_region = os.environ.get("AWS_DEFAULT_REGION")
    try:
        failures = transform.transform_template()
    finally:
        # The wrapper points AWS_DEFAULT_REGION at the region for samtranslator; put it back.
        if saved_region is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved_region
    if failures:
        raise TemplateError("; ".join(str(failure.message) for failure in failures))
    expanded: dict[str, Any] = transform.template()
    return expanded


def expand_file(path: Path, parameters: Mapping[str, Any] | None = None, region: str = REGION) -> dict[str, Any]:
    return expand(load_yaml(path), parameters, region)
