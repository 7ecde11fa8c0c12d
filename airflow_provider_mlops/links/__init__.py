"""
Operator extra links: the SageMaker console and CloudWatch logs of what a task ran.

:mod:`.sagemaker` builds the console URLs (pure functions); :mod:`.console` holds the
``BaseOperatorLink`` classes, which read the URLs a task pushed to XCom under
:data:`LINKS_XCOM_KEY`, so the operators stay backend-agnostic.
"""

LINKS_XCOM_KEY = "mlops_links"
