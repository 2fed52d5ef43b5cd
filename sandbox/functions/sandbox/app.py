from payrail.http import api_handler
from payrail.settings import Once
from payrail_sandbox.api import resolver
from payrail_sandbox.settings import SandboxSettings

app = resolver()
settings = Once(SandboxSettings)


@api_handler
def lambda_handler(event, context):
    app.append_context(settings=settings())
    return app.resolve(event, context)
