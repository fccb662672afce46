"""Assistant routes, mounted at /api/v1/."""

from django.urls import path

from .apis import ChatApi, VectorEmbedApi

urlpatterns = [
    path("chat", ChatApi.as_view(), name="assistant-chat"),
    path("storage/vectors/embed", VectorEmbedApi.as_view(), name="assistant-vectors-embed"),
]
