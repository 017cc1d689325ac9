"""What the services exchange over REST: the request and response models a service serves and its peers read
through the typed clients in `shared/clients/` (events' payloads are in `shared/events/catalogue.py`).

One module per contract family. The owning service's endpoints serve these very models, so its OpenAPI
document is the contract; a change here is a change of the public API and needs `desk openapi`."""
