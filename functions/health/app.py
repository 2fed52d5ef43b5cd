from aws_lambda_powertools.event_handler import Response
from payrail.health import HealthReport, check_dependencies
from payrail.http import api_handler, create_app, json_response
from payrail.settings import HealthSettings, Once

app = create_app()
settings = Once(HealthSettings)


@app.get(
    "/health",
    summary="Whether the table and the queues answer",
    responses={200: {"description": "All dependencies answer"}, 503: {"description": "A dependency is failing"}},
    tags=["Operations"],
)
def health() -> Response[HealthReport]:
    report = check_dependencies(settings())
    return json_response(report, status=200 if report.status == "ok" else 503)


@api_handler
def lambda_handler(event, context):
    return app.resolve(event, context)
