"""`fer server`: the team's MLflow (PostgreSQL + `mlflow server`) in the foreground;
`fer server --stop` stops the one running for this project's `tracking.server.dir`."""

from fer_pipeline.tracking_server.postgres import PostgresError
from fer_pipeline.tracking_server.service import ServerError, Settings, serve, stop_running


def run(params: dict, args) -> None:
    settings = Settings.from_params(params)
    if args.stop:
        try:
            stopped = stop_running(settings.folder)
        except ServerError as exc:
            raise SystemExit(f"fer server --stop: {exc}") from None
        print(f"stopped the server for {settings.folder}" if stopped else f"no server runs for {settings.folder}")
        return
    try:
        serve(settings)
    except (PostgresError, ServerError) as exc:
        raise SystemExit(f"fer server: {exc}") from None
