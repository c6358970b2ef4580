"""Wires the prompts service: store, registry, cache, backups and their schedule."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from spark.prompts.v1 import prompts_pb2, prompts_pb2_grpc

from services.access.checkpoint import build_checkpoint
from services.access.metrics import AccessMetrics
from services.common.descriptors import default_descriptor_path, load_pool
from services.common.metrics import ServiceMetrics
from services.common.routes import http_routes
from services.common.server import RunningServer, service_store, start_server
from services.common.store import Store
from services.prompts.backups import BackupStore
from services.prompts.cache import ReadCache
from services.prompts.config import PromptsConfig
from services.prompts.cron import CronSchedule, run_on_schedule, utc_now
from services.prompts.repository import PromptRepository
from services.prompts.service import CacheTtls, PromptsServicer, RestoreLimits

logger = logging.getLogger(__name__)

SERVICE_NAME = prompts_pb2.DESCRIPTOR.services_by_name["PromptsService"].full_name


async def _scheduled_backup(backups: BackupStore, servicer: PromptsServicer) -> None:
    """Takes the backup unless another instance already claimed this minute's run."""
    slot = utc_now().strftime("%Y-%m-%dT%H:%M")
    if not await backups.claim(slot):
        logger.info("scheduled backup %s taken by another instance", slot)
        return
    _, info = await servicer.take_backup("scheduled")
    logger.info("scheduled backup %s stored", info.id, extra={"count": info.count, "size_bytes": info.size_bytes})


async def build_server(config: PromptsConfig, store: Store | None = None) -> RunningServer:
    """Starts the prompts server; opens the configured store unless one is passed in (tests share one)."""
    schedule = CronSchedule.parse(config.backup_cron) if config.backup_cron else None
    owned, active_store, tracer_provider = service_store(config.server, config.redis_url, config.data_dir, store)
    repository = PromptRepository(active_store)
    metrics = ServiceMetrics()
    checkpoint = build_checkpoint(config.gate, active_store, AccessMetrics(metrics.registry), [SERVICE_NAME])
    cache = ReadCache(repository.generation, metrics.registry, enabled=config.cache_enabled)
    pool, service_names = load_pool(default_descriptor_path())
    backups = BackupStore(active_store, retention_days=config.backup_retention_days)
    servicer = PromptsServicer(
        repository,
        active_store,
        cache,
        backups,
        ttls=CacheTtls(config.cache_get_ttl_s, config.cache_list_ttl_s),
        restore_limits=RestoreLimits(config.restore_max_prompts, config.restore_max_bytes, config.restore_timeout_s),
        environment=config.environment,
        routes=http_routes(pool, service_names),
    )

    def register(server: grpc.aio.Server) -> None:
        prompts_pb2_grpc.add_PromptsServiceServicer_to_server(servicer, server)

    closers = [repository.close]
    if schedule is not None:
        task = asyncio.ensure_future(run_on_schedule(schedule, lambda: _scheduled_backup(backups, servicer)))
        logger.info("scheduled backups: %s", schedule)

        async def stop_schedule() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        closers.append(stop_schedule)
    if owned:
        closers.insert(0, active_store.close)
    return await start_server(
        config.server,
        [SERVICE_NAME],
        register,
        closers=closers,
        metrics=metrics,
        tracer_provider=tracer_provider,
        admissions=checkpoint,
    )
