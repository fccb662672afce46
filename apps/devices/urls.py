"""Device endpoints under /api/v1/devices…"""

from django.urls import path

from .apis import DeviceForgetApi, DeviceListApi

urlpatterns = [
    path("devices", DeviceListApi.as_view(), name="devices"),
    path("devices/<str:device_id>", DeviceForgetApi.as_view(), name="device-forget"),
]
