"""
Hooks: every SDK call of the provider lives here (boto3 through the amazon provider's hooks).

Import the leaf modules (``hooks.sagemaker``) only where they are used: they import the amazon
provider and boto3, which the DAG loader must not pay for.
"""
