from aws_lambda_powertools.event_handler import Response
from payrail.health import HealthCheck, HealthReport
from payrail.http import api_handler, create_app, json_response
from payrail.settings import HealthSettings, Once

app = create_app()
settings = Once(HealthSettings)
health_check = HealthCheck()  # one per instance: at most one round of checks per interval


@app.get(
    "/health",
    summary="Whether the table and the queues answer (checked at most once per interval per instance)",
    responses={200: {"description": "All dependencies answer"}, 503: {"description": "A dependency is failing (degraded)"}},
    tags=["Operations"],
)
def health() -> Response[HealthReport]:
    report = health_check.report(settings())
    return json_response(report, status=200 if report.status == "ok" else 503)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
