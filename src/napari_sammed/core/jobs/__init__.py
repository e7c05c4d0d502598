"""Jobs over many files: bulk runs of a plan, locally or on dask.distributed."""

from .batch import BatchResult, ModelConfig, run_batch, run_case
from .plan import Plan, PlanError, load_plan

__all__ = ["BatchResult", "ModelConfig", "Plan", "PlanError", "load_plan", "run_batch", "run_case"]
