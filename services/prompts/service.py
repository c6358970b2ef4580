"""The thin `spark.prompts.v1.PromptsService` servicer: proto <-> registry, cache, backups."""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import orjson
from google.api import httpbody_pb2
from spark.prompts.v1 import prompts_pb2, prompts_pb2_grpc

from services.common.cleanup import DEFAULT_RULE, CleanupRule, compile_rule
from services.common.errors import FieldViolation, InvalidArgument, quoted
from services.common.identity import current_caller
from services.common.routes import HttpRoute
from services.common.store import Set, Store
from services.common.transcoding import set_http_status, strict_body
from services.prompts.backups import BackupInfo, BackupStore, export_document, parse_export
from services.prompts.cache import ReadCache
from services.prompts.model import (
    DEFAULT_LANG,
    DEFAULT_NAMESPACE,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    Changes,
    Draft,
    ListQuery,
    Prompt,
    Revision,
)
from services.prompts.render import render
from services.prompts.repository import PromptRepository

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

CONFIG_SPACE = "prompts:config"
CLEANUP_KEY = "regex_cleanup"
DEFAULT_LIMIT = 50
MAX_LIMIT = 100
PRODUCT_NAME = "Spark services"
VERSION = "0.1.0"


def _invalid(field: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
    return InvalidArgument(f"{field} {description}", reason=reason, violations=(FieldViolation(field, description),))


def prompt_message(prompt: Prompt) -> prompts_pb2.Prompt:
    message = prompts_pb2.Prompt(
        id=prompt.id,
        namespace=prompt.namespace,
        name=prompt.name,
        version=prompt.version,
        lang=prompt.lang,
        text=prompt.text,
        tags=list(prompt.tags),
        priority=prompt.priority,
        is_active=prompt.is_active,
        is_default=prompt.is_default,
    )
    message.created_at.FromJsonString(prompt.created_at)
    message.updated_at.FromJsonString(prompt.updated_at)
    return message


def _revision_message(revision: Revision) -> prompts_pb2.PromptRevision:
    message = prompts_pb2.PromptRevision(
        revision=revision.revision, prompt_id=revision.prompt_id, action=revision.action, actor=revision.actor
    )
    message.time.FromJsonString(revision.time)
    if revision.before is not None:
        message.before.CopyFrom(prompt_message(revision.before))
    if revision.after is not None:
        message.after.CopyFrom(prompt_message(revision.after))
    return message


def _backup_message(info: BackupInfo) -> prompts_pb2.Backup:
    message = prompts_pb2.Backup(id=info.id, count=info.count, size_bytes=info.size_bytes, trigger=info.trigger)
    message.created_at.FromJsonString(info.created_at)
    return message


def _parse_active(raw: str) -> bool | None:
    lowered = raw.strip().lower()
    if lowered in {"", "any"}:
        return None
    if lowered in {"1", "true", "yes"}:
        return True
    if lowered in {"0", "false", "no"}:
        return False
    raise _invalid("active", "must be 1, 0, true or false")


def _tags(values: Sequence[Any], field: str) -> tuple[str, ...]:
    if not all(isinstance(value, str) for value in values):
        raise _invalid(field, "must be a list of strings")
    return tuple(values)


@dataclass(frozen=True, slots=True)
class CacheTtls:
    """How long cached reads live, in seconds."""

    get_s: float
    list_s: float


@dataclass(frozen=True, slots=True)
class RestoreLimits:
    """The largest restore, and how long one may take before it gives up having changed nothing."""

    max_prompts: int
    max_bytes: int
    timeout_s: float


class PromptsServicer(prompts_pb2_grpc.PromptsServiceServicer):
    """Maps PromptsService RPCs onto the registry; rules live in model, repository and backups."""

    def __init__(
        self,
        repository: PromptRepository,
        store: Store,
        cache: ReadCache,
        backups: BackupStore,
        *,
        ttls: CacheTtls,
        restore_limits: RestoreLimits,
        environment: str,
        routes: Sequence[HttpRoute],
    ) -> None:
        self._repository = repository
        self._store = store
        self._cache = cache
        self._backups = backups
        self._ttls = ttls
        self._restore_limits = restore_limits
        self._environment = environment
        self._routes = tuple(routes)

    # --- reads -----------------------------------------------------------------------------------

    async def _get(self, prompt_id: int) -> Prompt:
        return await self._cache.get_or_load(
            "get", prompt_id, self._ttls.get_s, lambda: self._repository.get(prompt_id)
        )

    async def _get_default(self, namespace: str, lang: str, where: str = "") -> Prompt:
        # No stored prompt has a longer namespace or lang: refuse one as invalid rather than look it up.
        for field, value in (("namespace", namespace), ("lang", lang)):
            if len(value) > MAX_NAME_CHARS:
                raise _invalid(where + field, f"is longer than {MAX_NAME_CHARS} characters")
        namespace, lang = namespace or DEFAULT_NAMESPACE, lang or DEFAULT_LANG
        return await self._cache.get_or_load(
            "default", (namespace, lang), self._ttls.get_s, lambda: self._repository.get_default(namespace, lang)
        )

    async def ListPrompts(
        self, request: prompts_pb2.ListPromptsRequest, context: Context
    ) -> prompts_pb2.ListPromptsResponse:
        if not 0 <= request.limit <= MAX_LIMIT:
            raise _invalid("limit", f"must be between 1 and {MAX_LIMIT}")
        query = ListQuery(request.namespace, request.lang, _parse_active(request.active), request.tag)
        offset = _decode_page_token(request.page_token, query) if request.page_token else 0
        matching = await self._cache.get_or_load(
            "list", query, self._ttls.list_s, lambda: self._repository.query(query)
        )
        limit = request.limit or DEFAULT_LIMIT
        page = matching[offset : offset + limit]
        more = offset + limit < len(matching)
        return prompts_pb2.ListPromptsResponse(
            items=[prompt_message(p) for p in page],
            next_page_token=_encode_page_token(offset + limit, query) if more else "",
        )

    async def GetPrompt(self, request: prompts_pb2.GetPromptRequest, context: Context) -> prompts_pb2.Prompt:
        return prompt_message(await self._get(request.id))

    async def GetDefaultPrompt(
        self, request: prompts_pb2.GetDefaultPromptRequest, context: Context
    ) -> prompts_pb2.Prompt:
        return prompt_message(await self._get_default(request.namespace, request.lang))

    async def ListPromptRevisions(
        self, request: prompts_pb2.ListPromptRevisionsRequest, context: Context
    ) -> prompts_pb2.ListPromptRevisionsResponse:
        revisions = await self._repository.revisions(request.id)
        return prompts_pb2.ListPromptRevisionsResponse(revisions=[_revision_message(r) for r in revisions])

    async def RenderPrompt(
        self, request: prompts_pb2.RenderPromptRequest, context: Context
    ) -> prompts_pb2.RenderPromptResponse:
        request = strict_body(request)
        source = request.WhichOneof("source")
        prompt_id = 0
        if source == "text":
            if len(request.text) > MAX_TEXT_CHARS:
                raise _invalid("text", f"is over the limit of {MAX_TEXT_CHARS} characters")
            template = request.text
        elif source == "id":
            prompt = await self._get(request.id)
            template, prompt_id = prompt.text, prompt.id
        elif source == "default_for":
            prompt = await self._get_default(
                request.default_for.namespace, request.default_for.lang, where="default_for."
            )
            template, prompt_id = prompt.text, prompt.id
        else:
            raise _invalid("source", "is required: one of text, id or default_for")
        text = render(template, dict(request.variables))
        return prompts_pb2.RenderPromptResponse(text=text, prompt_id=prompt_id, source=source)

    # --- writes ----------------------------------------------------------------------------------

    async def CreatePrompt(self, request: prompts_pb2.CreatePromptRequest, context: Context) -> prompts_pb2.Prompt:
        actor = current_caller()
        request = strict_body(request)
        for field in ("namespace", "name", "text"):
            if not getattr(request, field):
                raise _invalid(field, "is required", reason="MISSING_FIELD")
        draft = Draft(
            namespace=request.namespace,
            name=request.name,
            text=request.text,
            version=request.version if request.HasField("version") else 1,
            lang=request.lang if request.HasField("lang") else DEFAULT_LANG,
            tags=_tags(request.tags, "tags"),
            priority=request.priority if request.HasField("priority") else 0,
            is_active=request.is_active if request.HasField("is_active") else True,
        )
        prompt = await self._repository.create(draft, make_default=request.make_default, actor=actor)
        message = prompt_message(prompt)
        # Only once nothing can fail: the edge answers with this status, whatever follows it.
        await set_http_status(context, 201)
        return message

    async def UpdatePrompt(self, request: prompts_pb2.UpdatePromptRequest, context: Context) -> prompts_pb2.Prompt:
        actor = current_caller()
        request = strict_body(request)
        changes = Changes(
            namespace=request.namespace if request.HasField("namespace") else None,
            name=request.name if request.HasField("name") else None,
            version=request.version if request.HasField("version") else None,
            lang=request.lang if request.HasField("lang") else None,
            text=request.text if request.HasField("text") else None,
            tags=_tags(list(request.tags), "tags") if request.HasField("tags") else None,
            priority=request.priority if request.HasField("priority") else None,
            is_active=request.is_active if request.HasField("is_active") else None,
        )
        return prompt_message(await self._repository.update(request.id, changes, actor=actor))

    async def DeletePrompt(
        self, request: prompts_pb2.DeletePromptRequest, context: Context
    ) -> prompts_pb2.DeletePromptResponse:
        actor = current_caller()
        deleted = await self._repository.delete(request.id, actor=actor)
        return prompts_pb2.DeletePromptResponse(deleted=True, id=deleted.id)

    async def SetDefaultPrompt(
        self, request: prompts_pb2.SetDefaultPromptRequest, context: Context
    ) -> prompts_pb2.Prompt:
        actor = current_caller()
        return prompt_message(await self._repository.set_default(request.id, actor=actor))

    # --- admin -----------------------------------------------------------------------------------

    async def take_backup(self, trigger: str) -> tuple[bytes, BackupInfo]:
        prompts = await self._repository.all_prompts()
        document = export_document(prompts)
        limits = self._restore_limits
        if len(prompts) > limits.max_prompts or len(document) > limits.max_bytes:
            logger.warning(
                "a %s backup of %d prompts, %d bytes, is over the restore limits (%d prompts, %d bytes): "
                "raise SPARK_PROMPTS_RESTORE_MAX_PROMPTS and SPARK_PROMPTS_RESTORE_MAX_BYTES to restore it",
                trigger,
                len(prompts),
                len(document),
                limits.max_prompts,
                limits.max_bytes,
            )
        return document, await self._backups.save(document, len(prompts), trigger)

    async def ExportPrompts(self, request: prompts_pb2.ExportPromptsRequest, context: Context) -> httpbody_pb2.HttpBody:
        document, info = await self.take_backup("manual")
        filename = f"prompts-backup-{info.created_at.replace(':', '-')}.json"
        await context.send_initial_metadata((("content-disposition", f'attachment; filename="{filename}"'),))
        return httpbody_pb2.HttpBody(content_type="application/json", data=document)

    async def ListBackups(
        self, request: prompts_pb2.ListBackupsRequest, context: Context
    ) -> prompts_pb2.ListBackupsResponse:
        return prompts_pb2.ListBackupsResponse(backups=[_backup_message(b) for b in await self._backups.list()])

    async def RestorePrompts(
        self, request: prompts_pb2.RestorePromptsRequest, context: Context
    ) -> prompts_pb2.RestorePromptsResponse:
        actor = current_caller()
        limits = self._restore_limits
        deadline = time.monotonic() + limits.timeout_s
        if (remaining := context.time_remaining()) is not None:
            deadline = min(deadline, time.monotonic() + remaining)
        # Each read of a bytes field copies it: read the body once.
        data = request.body.data
        if request.backup_id and data:
            raise _invalid("backup_id", "cannot be given together with a body")
        if request.backup_id:
            data = await self._backups.load(request.backup_id)
        elif not data:
            raise _invalid("body", "is required: an export, or a backup_id", reason="MISSING_FIELD")
        if len(data) > limits.max_bytes:
            if not request.backup_id:
                # The same 413 the edge answers for a body over its own limit.
                await set_http_status(context, 413)
            what = f"backup {quoted(request.backup_id)}" if request.backup_id else "the export"
            raise InvalidArgument(
                f"{what} is {len(data)} bytes, over the restore limit of {limits.max_bytes} bytes",
                reason="RESTORE_TOO_LARGE",
                metadata={"size": str(len(data)), "limit": str(limits.max_bytes)},
                violations=(FieldViolation("body", f"must be at most {limits.max_bytes} bytes"),),
            )
        prompts = parse_export(data, max_prompts=limits.max_prompts)
        del data
        restored = await self._repository.replace_all(prompts, actor=actor, deadline=deadline)
        return prompts_pb2.RestorePromptsResponse(restored=restored)

    async def _cleanup_rule(self) -> CleanupRule:
        entry = await self._store.get(CONFIG_SPACE, CLEANUP_KEY)
        if entry is None:
            return DEFAULT_RULE
        stored = orjson.loads(entry.value)
        return CleanupRule(pattern=stored["pattern"], flags=stored["flags"], source="kv")

    async def GetCleanupRule(
        self, request: prompts_pb2.GetCleanupRuleRequest, context: Context
    ) -> prompts_pb2.CleanupRule:
        rule = await self._cleanup_rule()
        return prompts_pb2.CleanupRule(pattern=rule.pattern, flags=rule.flags, source=rule.source)

    async def UpdateCleanupRule(
        self, request: prompts_pb2.UpdateCleanupRuleRequest, context: Context
    ) -> prompts_pb2.CleanupRule:
        request = strict_body(request)
        if not request.pattern:
            raise _invalid("pattern", "is required", reason="MISSING_FIELD")
        flags = request.flags or DEFAULT_RULE.flags
        compile_rule(request.pattern, flags)
        value = orjson.dumps({"pattern": request.pattern, "flags": flags})
        await self._store.commit([], [Set(CONFIG_SPACE, CLEANUP_KEY, value)])
        return prompts_pb2.CleanupRule(pattern=request.pattern, flags=flags, source="kv")

    async def GetAbout(self, request: prompts_pb2.GetAboutRequest, context: Context) -> prompts_pb2.GetAboutResponse:
        rule = await self._cleanup_rule()
        cleanup = prompts_pb2.CleanupRule(pattern=rule.pattern, flags=rule.flags, source=rule.source)
        return prompts_pb2.GetAboutResponse(
            name=PRODUCT_NAME,
            version=VERSION,
            environment=self._environment,
            routes=[prompts_pb2.HttpRoute(method=r.method, path=r.path, rpc=r.rpc) for r in self._routes],
            regex_cleanup=cleanup,
            config=prompts_pb2.AboutConfig(regex_cleanup=cleanup),
        )


def _encode_page_token(offset: int, query: ListQuery) -> str:
    raw = orjson.dumps({"o": offset, "q": [query.namespace, query.lang, query.active, query.tag]})
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _decode_page_token(token: str, query: ListQuery) -> int:
    try:
        decoded = orjson.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if decoded["q"] == [query.namespace, query.lang, query.active, query.tag] and isinstance(decoded["o"], int):
            return max(0, int(decoded["o"]))
    except (binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError, KeyError, TypeError):
        pass
    raise _invalid("page_token", "was not issued for these filters", reason="INVALID_PAGE_TOKEN")
