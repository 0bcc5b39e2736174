"""The HTTP layer of the prediction API: the edge middleware, the API key, the error bodies, one
router per concern and the local Swagger UI. ``model_serving.app.create_app`` wires them."""
