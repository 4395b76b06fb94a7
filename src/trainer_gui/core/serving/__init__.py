"""Local inference: serve a trained model the way SageMaker does, and send it requests.

* `runtime`: the in-container model server (standard library only, mounted into plain images);
* `archive`: safe unpacking of model.tar.gz;
* `launcher`: local endpoints, one Docker container each (`EndpointLauncher`);
* `client`: requests to a local endpoint or a deployed SageMaker endpoint.

See docs/serving.md.
"""
