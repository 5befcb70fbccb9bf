"""The OpenFloat OpCenter's Lambda handlers: the HTTPS API's routes and the Step Functions task
functions, each a few lines into chalicelib."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from chalice import Chalice
from pydantic import BaseModel

from chalicelib import (
    auth,
    blockvolumes,
    changes,
    events,
    images,
    jobs,
    launches,
    licensing,
    logs,
    metering,
    openapi,
    reclaims,
    rightsizing,
    tasks,
    users,
    web,
)
from chalicelib import reconcile as reconciler
from chalicelib import runtime as runtime_module
from chalicelib import storage as named_storage
from chalicelib import vault as user_secrets
from chalicelib.errors import BadRequest
from chalicelib.routing import TEXT, Call, Routes, text_response
from chalicelib.runtime import Runtime
from chalicelib.store import Store
from chalicelib.wire.api import (
    API_VERSION,
    RELEASE,
    CancelRequest,
    HealthView,
    ImageRequest,
    ImageUpdate,
    ImageView,
    JobView,
    LogInfo,
    LoginRequest,
    LoginView,
    LogoutView,
    MigrateRequest,
    ModifyRequest,
    Page,
    PasswordChange,
    ReclaimRequest,
    ReclaimView,
    RerunRequest,
    ResumeRequest,
    SubmitRequest,
    SuspendRequest,
    UserRequest,
    UserView,
    WhoamiView,
)
from chalicelib.wire.billing import UsageReport
from chalicelib.wire.licenses import LicenseDocument, LicenseView
from chalicelib.wire.logs import MAX_LOG_LINES
from chalicelib.wire.status import JobStatus
from chalicelib.wire.tasks import (
    InstanceRef,
    JobRef,
    LaunchRequest,
    PlanRequest,
    SettleRequest,
    StatusChange,
    VolumesRequest,
)
from chalicelib.wire.utilization import UtilizationView
from chalicelib.wire.vault import SecretRequest, SecretValue, SecretView, StorageRequest, StorageView

Input = TypeVar("Input", bound=BaseModel)

app = Chalice(app_name="openfloat")
routes = Routes(app)

_PAGING = (("limit", "page size, 1-500 (default 100)"), ("nextToken", "from the previous page"))


# ---- session --------------------------------------------------------------------------------


@routes.route("GET", "/v1/health", response=HealthView, public=True)
def health(call: Call) -> HealthView:
    """Report that the API is up."""
    return HealthView(status="ok", version=API_VERSION, release=RELEASE)


@routes.route("POST", "/v1/login", body=LoginRequest, response=LoginView, public=True,
              also=("401", "429"))
def login(call: Call) -> LoginView:
    """Exchange a username and password for a bearer token."""
    return auth.login(call.runtime, call.store, call.body.username, call.body.password,
                      call.source_address())


@routes.route("POST", "/v1/logout", response=LogoutView)
def logout(call: Call) -> LogoutView:
    """Revoke the token this request carries; the user's other sessions go on."""
    return auth.logout(call.runtime, call.store, call.principal)


@routes.route("GET", "/v1/whoami", response=WhoamiView)
def whoami(call: Call) -> WhoamiView:
    """Name the user the token belongs to."""
    return WhoamiView(username=call.principal.username, role=call.principal.role)


@routes.route("GET", "/v1/openapi.json", response=dict)
def openapi_document(call: Call) -> dict:
    """This API's OpenAPI document."""
    return openapi.build(routes.operations)


# ---- the web interface (its files; the page itself calls the routes below) --------------


@routes.route("GET", "/", response=str, public=True, content_type=web.HTML)
def web_page(call: Call) -> Any:
    """The web interface."""
    return web.page((call.request.context or {}).get("stage"))


@routes.route("GET", "/ui/{name}", response=str, public=True, content_type="text/javascript")
def web_asset(call: Call, name: str) -> Any:
    """A script or style sheet of the web interface."""
    return web.asset(name)


# ---- jobs -----------------------------------------------------------------------------------


@routes.route("POST", "/v1/jobs", body=SubmitRequest, response=JobView, status=201)
def submit_job(call: Call) -> JobView:
    """Submit a job."""
    return jobs.submit(call.runtime, call.store, call.principal, call.body, call.api_url())


@routes.route(
    "GET", "/v1/jobs", response=Page[JobView],
    query=(("status", "comma-separated statuses, any of which matches"),
           ("user", "owner (admins only for other users)"), ("name", "exact job name"), *_PAGING),
)
def list_jobs(call: Call) -> Page[JobView]:
    """List jobs, newest first."""
    return jobs.list_jobs(
        call.store, call.principal, statuses=_statuses(call.query("status")),
        user=call.query("user") or None, name=call.query("name") or None,
        limit=call.page_size(), token=call.page_token(),
    )


@routes.route("GET", "/v1/jobs/{job_id}", response=JobView, job_token=True)
def show_job(call: Call, job_id: str) -> JobView:
    """Show one job with its history."""
    return jobs.show(call.runtime, call.store, call.principal, job_id)


@routes.route("POST", "/v1/jobs/{job_id}/cancel", body=CancelRequest, response=JobView)
def cancel_job(call: Call, job_id: str) -> JobView:
    """Cancel a job."""
    return jobs.cancel(call.runtime, call.store, call.principal, job_id, call.body.reason)


@routes.route("POST", "/v1/jobs/{job_id}/migrate", body=MigrateRequest, response=JobView,
              status=202, job_token=True)
def migrate_job(call: Call, job_id: str) -> JobView:
    """Move a running job to a new instance (another type or size, or the same again)."""
    return jobs.migrate(call.runtime, call.store, call.principal, job_id, call.body)


@routes.route("POST", "/v1/jobs/{job_id}/suspend", body=SuspendRequest, response=JobView,
              status=202)
def suspend_job(call: Call, job_id: str) -> JobView:
    """Checkpoint a running job and release its instance."""
    return jobs.suspend(call.runtime, call.store, call.principal, job_id, call.body.reason)


@routes.route("POST", "/v1/jobs/{job_id}/resume", body=ResumeRequest, response=JobView,
              status=202)
def resume_job(call: Call, job_id: str) -> JobView:
    """Restore a suspended job on a new instance."""
    return jobs.resume(call.runtime, call.store, call.principal, job_id, call.body.reason)


@routes.route("POST", "/v1/jobs/{job_id}/reclaim", body=ReclaimRequest, response=ReclaimView,
              status=202)
def reclaim_job(call: Call, job_id: str) -> ReclaimView:
    """Reclaim the job's instance as EC2 would (admins, local OpCenter only)."""
    return reclaims.reclaim(call.runtime, call.store, call.principal, job_id, call.body)


@routes.route("GET", "/v1/jobs/{job_id}/logs", response=list[LogInfo])
def list_job_logs(call: Call, job_id: str) -> list[LogInfo]:
    """List a job's logs."""
    return logs.list_logs(call.runtime, call.store, call.principal, job_id)


@routes.route("GET", "/v1/jobs/{job_id}/logs/{name}", response=str, content_type=TEXT,
              query=(("offset", "from this byte on; the X-Log-* headers say where it ended"),
                     ("lines", f"only the last lines, 1-{MAX_LOG_LINES}")))
def read_job_log(call: Call, job_id: str, name: str) -> Any:
    """Read a job's stdout or stderr: whole, from a byte offset, or its last lines."""
    offset = logs.whole_number(call.query("offset"), "offset", 0)
    lines = logs.whole_number(call.query("lines"), "lines", 1, MAX_LOG_LINES)
    if offset is None and lines is None:
        content = logs.read_log(call.runtime, call.store, call.principal, job_id, name)
        return content.decode(errors="replace")
    part = logs.read_slice(call.runtime, call.store, call.principal, job_id, name, offset, lines)
    return text_response(part.content.decode(errors="replace"), part.headers())


# ---- the license ----------------------------------------------------------------------------


@routes.route("GET", "/v1/license", response=LicenseView)
def show_license(call: Call) -> LicenseView:
    """This OpCenter's id, its license and this month's core-hours (admins)."""
    return licensing.info(call.runtime, call.store, call.principal)


@routes.route("PUT", "/v1/license", body=LicenseDocument, response=LicenseView)
def apply_license(call: Call) -> LicenseView:
    """Apply a signed license, replacing the one before; waiting jobs start (admins)."""
    return licensing.apply(call.runtime, call.store, call.principal, call.body)


@routes.route("DELETE", "/v1/license", response=LicenseView)
def remove_license(call: Call) -> LicenseView:
    """Remove the license: running jobs go on, new ones wait for another (admins)."""
    return licensing.remove(call.runtime, call.store, call.principal)


@routes.route("GET", "/v1/reports/usage", response=UsageReport,
              query=(("month", "YYYY-MM (default: this month, UTC)"),
                     ("user", "one user (admins; users see only their own)")))
def usage_report(call: Call) -> UsageReport:
    """A month's vCPU core-hours by user, the instances still running counted up to now."""
    return metering.report(call.runtime, call.store, call.principal, call.query("month"),
                           call.query("user") or None)


@routes.route("GET", "/v1/reports/cost", response=UsageReport,
              query=(("month", "YYYY-MM (default: this month, UTC)"),
                     ("user", "one user (admins; users see only their own)")))
def cost_report(call: Call) -> UsageReport:
    """A month's spend by user, against what On-demand would have cost."""
    return metering.report(call.runtime, call.store, call.principal, call.query("month"),
                           call.query("user") or None, priced=True)


@routes.route("GET", "/v1/jobs/{job_id}/utilization", response=Page[UtilizationView],
              query=(("limit", f"page size, 1-{rightsizing.MAX_SERIES_PAGE} "
                               f"(default {rightsizing.DEFAULT_SERIES_PAGE})"),
                     ("nextToken", "from the previous page")))
def job_utilization(call: Call, job_id: str) -> Page[UtilizationView]:
    """A job's CPU and memory use over time, newest sample first."""
    limit = logs.whole_number(call.query("limit"), "limit", 1, rightsizing.MAX_SERIES_PAGE)
    return rightsizing.series(call.runtime, call.store, call.principal, job_id,
                              limit or rightsizing.DEFAULT_SERIES_PAGE, call.page_token())


@routes.route("PATCH", "/v1/jobs/{job_id}", body=ModifyRequest, response=JobView)
def modify_job(call: Call, job_id: str) -> JobView:
    """Change a live job's vmPolicy, migratePolicy or custom tags."""
    return changes.modify(call.runtime, call.store, call.principal, job_id, call.body)


@routes.route("POST", "/v1/jobs/{job_id}/rerun", body=RerunRequest, response=JobView, status=201)
def rerun_job(call: Call, job_id: str) -> JobView:
    """Submit a finished job again as a new job."""
    return changes.rerun(call.runtime, call.store, call.principal, job_id, call.body.reason,
                         call.api_url())


def _statuses(text: str | None) -> frozenset[JobStatus]:
    names = [part.strip() for part in (text or "").split(",") if part.strip()]
    known = {status.value: status for status in JobStatus}
    for name in names:
        if name not in known:
            raise BadRequest(f"{name!r} is not a job status", field="status")
    return frozenset(known[name] for name in names)


# ---- Application Library --------------------------------------------------------------------


@routes.route("POST", "/v1/images", body=ImageRequest, response=ImageView, status=201)
def add_image(call: Call) -> ImageView:
    """Add an image to the Application Library."""
    return images.add(call.runtime, call.store, call.principal, call.body)


@routes.route("GET", "/v1/images", response=Page[ImageView], query=_PAGING)
def list_images(call: Call) -> Page[ImageView]:
    """List the Application Library."""
    return images.list_images(call.store, call.page_size(), call.page_token())


@routes.route("GET", "/v1/images/{name}", response=ImageView)
def show_image(call: Call, name: str) -> ImageView:
    """Show one Application Library entry."""
    return images.get(call.store, name)


@routes.route("PATCH", "/v1/images/{name}", body=ImageUpdate, response=ImageView)
def update_image(call: Call, name: str) -> ImageView:
    """Change an entry's URI or credentials."""
    return images.update(call.runtime, call.store, call.principal, name, call.body)


@routes.route("DELETE", "/v1/images/{name}", response=ImageView)
def delete_image(call: Call, name: str) -> ImageView:
    """Remove an entry and its credentials."""
    return images.delete(call.runtime, call.store, call.principal, name)


# ---- users ----------------------------------------------------------------------------------


@routes.route("POST", "/v1/users", body=UserRequest, response=UserView, status=201)
def create_user(call: Call) -> UserView:
    """Create a user (admins only)."""
    return users.create(call.runtime, call.store, call.principal, call.body)


@routes.route("GET", "/v1/users", response=Page[UserView], query=_PAGING)
def list_users(call: Call) -> Page[UserView]:
    """List users (admins only)."""
    return users.list_users(call.store, call.principal, call.page_size(), call.page_token())


@routes.route("PUT", "/v1/users/{username}/password", body=PasswordChange, response=UserView,
              also=("429",))
def change_password(call: Call, username: str) -> UserView:
    """Set a user's password (one's own with the current one; an admin's for anyone)."""
    return users.change_password(call.runtime, call.store, call.principal, username, call.body,
                                 call.source_address())


@routes.route("DELETE", "/v1/users/{username}", response=UserView)
def delete_user(call: Call, username: str) -> UserView:
    """Delete a user (admins only)."""
    return users.delete(call.runtime, call.store, call.principal, username)


# ---- secrets and named storage (each user's own) --------------------------------------------


@routes.route("PUT", "/v1/secrets/{name}", body=SecretRequest, response=SecretView)
def set_secret(call: Call, name: str) -> SecretView:
    """Keep a secret under a name, replacing its value if it exists."""
    return user_secrets.put(call.runtime, call.principal, name, call.body)


@routes.route("GET", "/v1/secrets", response=Page[SecretView], query=_PAGING)
def list_secrets(call: Call) -> Page[SecretView]:
    """List the caller's secrets by name (never their values)."""
    return user_secrets.list_names(call.runtime, call.principal, call.page_size(),
                            call.page_token())


@routes.route("GET", "/v1/secrets/{name}", response=SecretValue, job_token=True)
def get_secret(call: Call, name: str) -> SecretValue:
    """Read one of the caller's secrets (a job's token reads its owner's)."""
    return user_secrets.get(call.runtime, call.principal, name)


@routes.route("DELETE", "/v1/secrets/{name}", response=SecretView)
def delete_secret(call: Call, name: str) -> SecretView:
    """Delete one of the caller's secrets."""
    return user_secrets.delete(call.runtime, call.principal, name)


@routes.route("POST", "/v1/storage", body=StorageRequest, response=StorageView, status=201)
def register_storage(call: Call) -> StorageView:
    """Register a named S3 prefix or NFS export for `submit --storage NAME`."""
    return named_storage.register(call.runtime, call.store, call.principal, call.body)


@routes.route("GET", "/v1/storage", response=Page[StorageView], query=_PAGING)
def list_storage(call: Call) -> Page[StorageView]:
    """List the caller's registered storage."""
    return named_storage.list_storage(call.store, call.principal, call.page_size(),
                                call.page_token())


@routes.route("DELETE", "/v1/storage/{name}", response=StorageView)
def remove_storage(call: Call, name: str) -> StorageView:
    """Remove a registered storage and its keys (jobs already submitted keep theirs)."""
    return named_storage.remove(call.runtime, call.store, call.principal, name)


# ---- Step Functions tasks (names as chalicelib.workflows.TASK_FUNCTIONS lists them) ----------


def _run_task(task: Callable[[Runtime, Store, Input], BaseModel], model: type[Input],
              event: Any) -> dict:
    """Read the event as the task's input (MalformedTaskInput if it is not one), call the task
    with this process's runtime and store, and hand back its output as the workflow reads it."""
    request = tasks.read_input(model, event)
    rt = runtime_module.current()
    return task(rt, Store(rt.dynamodb, rt.config), request).model_dump(mode="json")


@app.lambda_function(name="task-set-status")
def task_set_status(event: dict, context: object) -> dict:
    return _run_task(tasks.set_status, StatusChange, event)


@app.lambda_function(name="task-job-instance")
def task_job_instance(event: dict, context: object) -> dict:
    return _run_task(tasks.job_instance, JobRef, event)


@app.lambda_function(name="task-release-instance")
def task_release_instance(event: dict, context: object) -> dict:
    return _run_task(tasks.release_instance, InstanceRef, event)


@app.lambda_function(name="task-plan-launch")
def task_plan_launch(event: dict, context: object) -> dict:
    return _run_task(launches.plan_launch, PlanRequest, event)


@app.lambda_function(name="task-launch-instance")
def task_launch_instance(event: dict, context: object) -> dict:
    return _run_task(launches.launch_instance, LaunchRequest, event)


@app.lambda_function(name="task-attach-volumes")
def task_attach_volumes(event: dict, context: object) -> dict:
    return _run_task(blockvolumes.attach, VolumesRequest, event)


@app.lambda_function(name="task-settle-job")
def task_settle_job(event: dict, context: object) -> dict:
    return _run_task(tasks.settle_job, SettleRequest, event)


# ---- event handlers (SQS event sources wired by infra: EC2 events, agent events) -----------
# Each answers with the batch's `batchItemFailures` (ReportBatchItemFailures): only the
# records whose handling failed are delivered again.


def _with_store(handle: Callable[[Runtime, Store, dict], events.Batch], event: dict) -> dict:
    rt = runtime_module.current()
    return dict(handle(rt, Store(rt.dynamodb, rt.config), event).response)


@app.lambda_function(name="ec2-events")
def ec2_events(event: dict, context: object) -> dict:
    return _with_store(events.handle_ec2_messages, event)


@app.lambda_function(name="agent-events")
def agent_events(event: dict, context: object) -> dict:
    return _with_store(events.handle_agent_messages, event)


# ---- the reconciler (run every minute by an EventBridge schedule that infra defines) ---------


@app.lambda_function(name="reconcile")
def reconcile(event: dict, context: object) -> dict:
    rt = runtime_module.current()
    return reconciler.reconcile(rt, Store(rt.dynamodb, rt.config)).as_dict()
