"""Named failures a worker agent reports for a task; each class name is the error name sent with
Step Functions' SendTaskFailure and matched by `ErrorEquals` in the workflows."""

from __future__ import annotations


class AgentFailure(Exception):
    """Base: a command the agent could not carry out, with a sentence saying why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def name(self) -> str:
        return type(self).__name__


class ImagePullFailed(AgentFailure):
    """The job's image could not be pulled (unknown image, unreachable registry)."""


class RegistryAuthFailed(ImagePullFailed):
    """The registry refused the stored credentials of a private image."""


class JobStartFailed(AgentFailure):
    """The container could not be created or started."""


class HostInitFailed(JobStartFailed):
    """The job's hostInit script exited non-zero or ran past its time limit on the host."""


class CheckpointFailed(AgentFailure):
    """CRIU or podman could not dump the container."""


class CheckpointUploadFailed(AgentFailure):
    """The checkpoint image could not be stored; the previous committed checkpoint stands."""


class CheckpointNotFound(AgentFailure):
    """No committed checkpoint exists for the job."""


class CheckpointCorrupt(AgentFailure):
    """A downloaded part or the whole image does not match the manifest's checksums."""


class RestoreFailed(AgentFailure):
    """podman could not restore the container from a verified image."""


class AgentError(AgentFailure):
    """The agent met an error nobody named (an S3 or SQS call refused, a bug) while carrying out
    the command; the message says which and where. The agent goes on serving."""
