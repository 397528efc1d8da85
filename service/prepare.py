"""A request prepared once, where it arrives: its named environment applied, its source pinned
by digest, the image it builds in, its environment and request key.

The API prepares a request in `submit` and stores the result on the `BuildRecord`; the
embedded `wheelwright build` prepares it in `build_and_publish`. Every later step (the worker's
cache lookup, the build, publish) reads the prepared values instead of working them out again.

One exception is deliberate: a git ref is resolved to its commit by the worker (the API never
runs git), and the worker then keys the build by the commit (`Prepared.pinned`), so two refs
of one commit share a wheel. Every other source must come out of the fetch stage with exactly
the key it was prepared with (`Prepared.check_fetched`); an archive whose bytes changed fails.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.environments import apply_environment
from service.errors import ConfigError, InvalidRequestError, SourceChangedError
from service.keys import environment_name, image_ref, request_key
from service.models import BuildRecord, BuildRequest, GitSource, Target
from service.policy import check_request
from service.recipes import apply_recipe
from service.sources import resolve_source


def build_image(target: Target, settings: Settings, executor: str | None = None) -> str:
    """The name of `target`'s build image, as the workers of this configuration build in it.

    `executor` defaults to the settings' own: the API and the workers must be configured with
    the same `executor` (and `host.inherit_packages`); the Helm chart sets both.
    """
    return image_ref(
        target, executor or settings.executor, host_packages=settings.host.inherit_packages
    )


@dataclass(frozen=True)
class Prepared:
    """A request with everything worked out from it once."""

    request: BuildRequest
    image: str
    environment: str
    key: str

    @classmethod
    def of(cls, request: BuildRequest, image: str) -> Prepared:
        rebuild_of = request.rebuild_of
        if rebuild_of is not None:  # the same inputs, or it is no rebuild of that build
            own = request_key(request.model_copy(update={"rebuild_of": None}), image)
            if own != rebuild_of.request_key:
                raise InvalidRequestError(
                    f"rebuild_of names request key {rebuild_of.request_key}, but this request's"
                    f" key is {own}: a rebuild repeats the original's inputs"
                )
        return cls(request, image, environment_name(request, image), request_key(request, image))

    @classmethod
    def from_record(
        cls, record: BuildRecord, *, request: BuildRequest, image: str | None = None
    ) -> Prepared:
        """What the API prepared and stored on the record. `request` is the record's request
        with its upload made local (the key does not name the path); `image` is used only for
        a record queued before records named their image."""
        named = record.image or image
        if named is None:
            raise ConfigError(f"build {record.id} names no build image")
        return cls(request, named, record.environment, record.request_key)

    def pinned(self, request: BuildRequest) -> Prepared:
        """The same request with its git ref resolved to `request`'s commit: keyed again by the
        commit; anything else must not have changed."""
        before, after = self.request.source, request.source
        if (
            isinstance(before, GitSource)
            and isinstance(after, GitSource)
            and before.commit is None
            and after.commit is not None
            and before.model_copy(update={"commit": after.commit}) == after
        ):
            return Prepared.of(request, self.image)
        self.check_fetched(request)
        return self

    def check_fetched(self, request: BuildRequest) -> None:
        """`SourceChangedError` unless `request` (what the fetch stage found) keys the same."""
        key = request_key(request, self.image)
        environment = environment_name(request, self.image)
        if (key, environment) != (self.key, self.environment):
            raise SourceChangedError(
                f"the {request.source.kind} source is not what was asked for: it was prepared as"
                f" request key {self.key} (environment {self.environment}), the fetched source"
                f" gives {key} (environment {environment}); it changed after it was submitted"
            )


def prepare(request: BuildRequest, settings: Settings, *, executor: str | None = None) -> Prepared:
    """Apply the request's named environment and its package's recipe, check it against this
    host's policy, pin its source by digest, and name its image, environment and key
    (`executor`: the one that will build it; default, the settings')."""
    request = apply_recipe(apply_environment(request, settings), settings)
    check_request(request, settings)
    resolved = resolve_source(request)
    return Prepared.of(resolved, build_image(resolved.target, settings, executor))
