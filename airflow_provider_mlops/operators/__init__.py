"""The provider's operators. Each takes ``config_path`` and reads the config at run time."""

from airflow_provider_mlops.operators.approve import MlopsApprovalOperator, MlopsAutoApproveOperator
from airflow_provider_mlops.operators.deploy import (
    MlopsDeployOperator,
    MlopsPromoteOperator,
    MlopsResolveVersionOperator,
)
from airflow_provider_mlops.operators.notify import MlopsNotifyOperator
from airflow_provider_mlops.operators.register import (
    MlopsGateOperator,
    MlopsGatePassedOperator,
    MlopsRegisterOperator,
)
from airflow_provider_mlops.operators.retrain import MlopsRetrainDecisionOperator, MlopsTriggerTrainOperator
from airflow_provider_mlops.operators.smoke_test import MlopsSmokeTestOperator
from airflow_provider_mlops.operators.train import MlopsEvaluateOperator, MlopsTrainOperator

__all__ = [
    "MlopsApprovalOperator",
    "MlopsAutoApproveOperator",
    "MlopsDeployOperator",
    "MlopsEvaluateOperator",
    "MlopsGateOperator",
    "MlopsGatePassedOperator",
    "MlopsNotifyOperator",
    "MlopsPromoteOperator",
    "MlopsRegisterOperator",
    "MlopsResolveVersionOperator",
    "MlopsRetrainDecisionOperator",
    "MlopsSmokeTestOperator",
    "MlopsTrainOperator",
    "MlopsTriggerTrainOperator",
]
