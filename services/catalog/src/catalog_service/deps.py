"""Annotated dependency aliases: what an endpoint may ask for."""

from typing import Annotated

from elasticsearch import AsyncElasticsearch
from fastapi import Depends, Request
from redis.asyncio import Redis

from catalog_service.cache import SearchCache
from catalog_service.schemas import SearchQuery
from catalog_service.settings import CatalogSettings
from storefront_kit.query import query_model

__all__ = ["ElasticsearchDep", "RedisDep", "SearchCacheDep", "SearchQueryDep", "SettingsDep"]


# ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool,
# three thread hops per search for attribute reads. (How many requests are worked on at
# once is the kit's admission limit, not the thread pool's size.)
async def _settings(request: Request) -> CatalogSettings:
    settings: CatalogSettings = request.app.state.settings
    return settings


async def _redis(request: Request) -> Redis:
    redis: Redis = request.app.state.redis
    return redis


async def _elasticsearch(request: Request) -> AsyncElasticsearch:
    elasticsearch: AsyncElasticsearch = request.app.state.elasticsearch
    return elasticsearch


async def _search_cache(request: Request) -> SearchCache:
    cache: SearchCache = request.app.state.search_cache
    return cache


SettingsDep = Annotated[CatalogSettings, Depends(_settings)]
RedisDep = Annotated[Redis, Depends(_redis)]
ElasticsearchDep = Annotated[AsyncElasticsearch, Depends(_elasticsearch)]
SearchCacheDep = Annotated[SearchCache, Depends(_search_cache)]
# The whole query string as one model: see storefront_kit.query for why.
SearchQueryDep = Annotated[SearchQuery, Depends(query_model(SearchQuery))]
