"""The AsyncAPI document of the bus: :mod:`boson.asyncapi.document` builds and renders it."""
