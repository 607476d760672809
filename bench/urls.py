from django.urls import path

from bench import baseline
from config.urls import urlpatterns as product_urlpatterns

urlpatterns = [path("bench/insert-one", baseline.insert_one), *product_urlpatterns]
