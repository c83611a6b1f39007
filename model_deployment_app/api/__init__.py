from model_deployment_app.api.app import create_app

__all__ = ["create_app"]
