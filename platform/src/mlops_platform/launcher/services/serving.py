"""The model serving API: ``model-serving serve`` (FastAPI on uvicorn, one worker).

It serves the registry's ``champion`` of the model named by ``SERVING_MODEL_NAME`` (default
``driver_ranking``) with features from the Feast online store, and follows the alias on its own.

Health is the process answering ``/health/live``: the service may well be up before any model is
registered (a fresh platform), in which case ``/health/ready`` answers 503 and says why (no
champion yet, registry unreachable, online store down). Every setting comes from the env file
and the environment the launcher passes (``MLOPS_DATA_DIR``, ``MLOPS_ONLINE_STORE_URL``,
``MLOPS_REDIS_URL``, ``MLFLOW_TRACKING_URI``, ``MLOPS_BIND_HOST``, ``SERVING_PORT``,
``SERVING_API_KEY``); see ``model_serving.settings``.

One OpenMP/BLAS thread per process: HistGradientBoosting's default thread count collapses
throughput on a small machine (see STACK-FACTS).
"""

from __future__ import annotations

from mlops_platform.launcher.services.base import Context, HttpService, Program


class ServingService(HttpService):
    name = "serving"
    description = "model serving API (FastAPI): ranks drivers with the registry's champion"
    depends_on = ("feast", "mlflow")
    start_timeout = 90.0

    def prepare(self, ctx: Context) -> None:
        ctx.state_dir(self.name)
        ctx.require(ctx.settings.serving_api_key, "SERVING_API_KEY")

    def port(self, ctx: Context) -> int:
        return ctx.settings.serving_port

    def programs(self, ctx: Context) -> list[Program]:
        environment = {
            "SERVING_PORT": str(self.port(ctx)),
            "SERVING_API_KEY": ctx.settings.serving_api_key.get_secret_value(),
        }
        return [self.api_program(ctx, "model-serving", environment, stop_wait_seconds=15)]

    def endpoints(self, ctx: Context) -> list[str]:
        url = self.url(ctx)
        return [
            f"Serving API         {url}/v1/predict  (header X-API-Key: SERVING_API_KEY in "
            f"{ctx.env_file}; docs {url}/docs, readiness {url}/health/ready)"
        ]
