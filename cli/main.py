"""`float`: the command line (MMCloud's spelling, global flags before or after the command) and
the dispatch to each noun's handler; every failure ends here as one `float: ...` line."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from cli import changes, follow, images, jobs, licenses, opcenter, reports, session, usage, users
from cli import secrets as secret_commands
from cli import storage as storage_commands
from cli.errors import CliError, UsageError
from cli.output import DEFAULT_FORMAT, FORMATS
from cli.session import JOB_ID

Handler = Callable[[argparse.Namespace], None]
IN_JOB = f"job ID (default inside a job: ${JOB_ID}, the job itself)"


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (exit 2) instead of usage + message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)  # `--user` must not quietly mean `--username`
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see: {self.prog} --help)")

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = super().parse_known_args(args, namespace)
        # argparse settles an optional positional at the first run of plain words, so in
        # `log tail --follow output` the flag before `output` leaves NAME empty and `output`
        # over; the word is NAME's, as MMCloud's CLI reads it.
        for action in self._actions:
            if (action.nargs == "?" and not action.option_strings and extras
                    and not extras[0].startswith("-")
                    and getattr(namespace, action.dest, None) is None):
                setattr(namespace, action.dest, extras.pop(0))
        return namespace, extras


def add_global_flags(parser: argparse.ArgumentParser, after_command: bool,
                     own: Sequence[str] = ()) -> None:
    """-a, -u, -p, -F. After the command they default to SUPPRESS so they do not overwrite the
    ones given before it. `own` names flags the command itself uses (image --username, user add
    --password); there the global flag is only accepted before the command."""
    default = argparse.SUPPRESS if after_command else None
    parser.add_argument("-a", "--address", default=default,
                        help="OpCenter address such as http://127.0.0.1:8787 (default: last used; "
                        "inside a job, $FLOAT_ADDRESS)")
    if "username" not in own:
        parser.add_argument("-u", "--username", dest="login_user", metavar="USER",
                            default=default, help="log in as this user first")
    if "password" not in own:
        parser.add_argument("-p", "--password", dest="login_password", metavar="PASS",
                            default=default, help="password for -u")
    parser.add_argument("-F", "--format", choices=FORMATS,
                        default=default,
                        help=f"output format (default: {DEFAULT_FORMAT})")


def build_parser() -> Parser:
    parser = Parser(prog="float", description="OpenFloat's command-line client (MMCloud style).")
    add_global_flags(parser, after_command=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(group: Any, name: str, run: Handler, text: str, aliases: Sequence[str] = (),
                own: Sequence[str] = ()) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name, aliases=list(aliases), help=text, description=text)
        add_global_flags(sub, after_command=True, own=own)
        sub.set_defaults(run=run)
        return sub

    login = command(commands, "login", session.login, "log in and save the session")
    login.add_argument("--info", action="store_true", help="show the current session instead")
    command(commands, "logout", session.logout, "revoke the saved session's token and forget it")

    submit = command(commands, "submit", jobs.submit, "submit a job", aliases=["sbatch"])
    submit.add_argument("-i", "--image", required=True, help="Application Library name or URI")
    submit.add_argument("-j", "--job", required=True, metavar="SCRIPT", help="job script file")
    submit.add_argument("-c", "--cpu", help="vCPUs: N or MIN:MAX")
    submit.add_argument("-m", "--mem", help="memory in GB: N or MIN:MAX")
    submit.add_argument("--instType", help="instance type, e.g. c5.2xlarge")
    submit.add_argument("-n", "--name", help="job name")
    submit.add_argument("-e", "--env", action="append", metavar="K=V", help="environment variable")
    submit.add_argument("--customTag", action="append", metavar="KEY:VALUE", help="custom tag")
    submit.add_argument("--dataVolume", action="append", metavar="SPEC",
                        help="[size=GB]:/mnt/x, [mode=r]s3://bucket/prefix:/mnt/x, nfs://...")
    submit.add_argument("--vmPolicy", metavar="SPEC", help="[spotOnly=true], [onDemand=true], "
                        "[spotFirst=true,retryLimit=3,retryInterval=600s]")
    submit.add_argument("--migratePolicy", metavar="SPEC",
                        help="[cpu.upperBoundRatio=90,mem.step=8,evadeOOM=true,...]")
    submit.add_argument("--disableRerun", action="store_true",
                        help="never start the job again from the beginning when no checkpoint "
                        "can be restored (it ends CheckpointFailed instead)")
    submit.add_argument("-f", "--force", action="store_true",
                        help="submit without asking anything (submit never asks; accepted as "
                        "MMCloud's scripts and pipeline plugins pass it)")
    submit.add_argument("--timeLimit", metavar="DURATION",
                        help="stop the job once it has run this long (3600, 90s, 30m, 2h) and "
                        "end it Timedout; time spent moving or suspended does not count")
    submit.add_argument("--checkpointInterval", metavar="DURATION",
                        help="also checkpoint the job every DURATION while it runs (600, 90s, "
                        "30m; at least 10s; 0: only on a reclaim notice or a move), so that a "
                        "reclaim without warning loses at most that much work")
    submit.add_argument("--gpu-count", "--gpu", dest="gpu", type=int, metavar="N",
                        help="GPUs the instance must have (placed on a GPU instance type)")
    submit.add_argument("--zone", help="availability zone, e.g. us-east-1b")
    submit.add_argument("--securityGroup", action="append", metavar="SG_ID",
                        help="security group of the instance (repeat for more)")
    submit.add_argument("--rootVolSize", type=int, metavar="GB", help="instance root volume size")
    submit.add_argument("--imageVolSize", type=int, metavar="GB",
                        help="size of the instance volume that holds container images")
    submit.add_argument("--disableMigrate", action="store_true",
                        help="never checkpoint the job: a Spot reclaim reruns it from the start "
                        "(or ends it, with --disableRerun) and it cannot be migrated or suspended")
    submit.add_argument("--privileged", action="store_true", help="run the container privileged")
    submit.add_argument("--withRoot", action="store_true",
                        help="run the job as root, whatever user the image names")
    submit.add_argument("--extraContainerOpts", action="append", metavar="OPTIONS",
                        help="further podman run options, e.g. '--cap-add SYS_ADMIN'")
    submit.add_argument("--dirMap", action="append", metavar="HOST:CONTAINER",
                        help="a directory of the host the job runs on (its own on each host)")
    submit.add_argument("--publish", action="append", metavar="HOST:CONTAINER",
                        help="publish a container port on the instance (gives the job a network)")
    submit.add_argument("--extraOptions", metavar="FLAGS",
                        help="more submit flags in one word, read as if typed on the line")
    submit.add_argument("--hostInit", metavar="FILE",
                        help="script run as root on each host the job visits, before its "
                        "container starts or is restored there; a failure ends it FailToExecute")
    submit.add_argument("--hostTerminate", metavar="FILE",
                        help="script run as root on each host once the job has left it (exited, "
                        "cancelled, moved or suspended)")
    submit.add_argument("--storage", action="append", metavar="NAME",
                        help="mount a storage registered with float storage register (repeat "
                        "for more)")

    listing = command(commands, "list", jobs.list_jobs, "list jobs", aliases=["squeue", "ls"])
    listing.add_argument("-f", "--filter", action="append", metavar="FILTER",
                         help='status=S [or status=S]..., user=U or name=N; repeat to AND')

    show = command(commands, "show", jobs.show, "show a job and its history")
    show.add_argument("-j", "--job", metavar="ID", help=IN_JOB)

    log = command(commands, "log", jobs.log, "list or print a job's logs")
    log.add_argument("-j", "--job", required=True, metavar="ID")
    log.add_argument("action", choices=("cat", "ls", "tail"))
    log.add_argument("name", nargs="?", help="stdout, stderr, output (stdout), each also as "
                     "NAME.autosave; hostinit.log, hostterminate.log (for cat)")
    log.add_argument("-f", "--follow", action="store_true",
                     help="tail: go on printing what the job prints until it ends")
    log.add_argument("-n", "--lines", type=int, metavar="N",
                     help=f"tail: print the last N lines first (default {follow.DEFAULT_LINES})")

    cancel = command(commands, "cancel", jobs.cancel, "cancel a job", aliases=["scancel"])
    cancel.add_argument("-j", "--job", required=True, metavar="ID")
    cancel.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    cancel.add_argument("--reason", help="why, kept in the job's history")

    migrate = command(commands, "migrate", jobs.migrate,
                      "move a running job to another instance (checkpoint and restore)")
    migrate.add_argument("-j", "--job", metavar="ID", help=IN_JOB)
    migrate.add_argument("--instType", help="the new instance type, e.g. c5.2xlarge")
    migrate.add_argument("-c", "--cpu", help="new vCPU range: N or MIN:MAX (not with --instType)")
    migrate.add_argument("-m", "--mem", help="new memory range in GB: N or MIN:MAX")
    migrate.add_argument("--vmPolicy", metavar="SPEC",
                         help="[spotOnly=true], [onDemand=true], [spotFirst=true,...] from now on")
    migrate.add_argument("-f", "--force", action="store_true",
                         help="move even onto the same instance type and market")
    migrate.add_argument("--reason", help="why, kept in the job's history")

    for name, run, text, alias in (
        ("suspend", jobs.suspend, "checkpoint a running job and release its instance",
         "hibernate"),
        ("resume", jobs.resume, "restore a suspended job on a new instance", "restore"),
    ):
        sub = command(commands, name, run, text, aliases=[alias])
        sub.add_argument("-j", "--job", required=True, metavar="ID")
        sub.add_argument("--reason", help="why, kept in the job's history")

    reclaim = command(commands, "reclaim", jobs.reclaim,
                      "reclaim a job's instance as EC2 would (admins; local OpCenter only)")
    reclaim.add_argument("-j", "--job", required=True, metavar="ID")
    reclaim.add_argument("--kind", metavar="KIND",
                         help="spot (default: EC2's warning, then termination), vanish "
                         "(terminated with no warning or event) or agent (the agent killed, "
                         "the instance left up)")
    reclaim.add_argument("--notice", type=_seconds, metavar="SECONDS",
                         help="for spot: seconds from the warning to termination (default 120)")

    modify = command(commands, "modify", changes.modify,
                     "change a live job's vmPolicy, migratePolicy or custom tags")
    modify.add_argument("-j", "--job", required=True, metavar="ID")
    modify.add_argument("--vmPolicy", metavar="SPEC",
                        help="[spotOnly=true], [onDemand=true], [spotFirst=true,...] for its "
                        "next launch or move")
    modify.add_argument("--migratePolicy", metavar="SPEC",
                        help="[cpu.upperBoundRatio=90,mem.step=8,evadeOOM=true,...]")
    modify.add_argument("--customTag", "--addCustomTag", action="append", metavar="KEY:VALUE",
                        help="add or replace a custom tag (repeat for more)")
    modify.add_argument("--removeCustomTag", action="append", metavar="KEY",
                        help="remove a custom tag (repeat for more)")
    modify.add_argument("--reason", help="why, kept in the job's history")

    top = command(commands, "top", usage.top,
                  "a job's CPU and memory use, sample by sample (oldest first; default: a "
                  "table)")
    top.add_argument("-j", "--job", required=True, metavar="ID")
    top.add_argument("-n", dest="samples", type=int, metavar="N",
                     help=f"the last N samples, 1-{usage.MAX_SAMPLES} "
                     f"(default {usage.DEFAULT_SAMPLES})")
    top.add_argument("--watch", nargs="?", type=_seconds, const=usage.DEFAULT_WATCH_SECONDS,
                     metavar="SECONDS", help="then print each new sample as it arrives, reading "
                     f"every SECONDS (default {usage.DEFAULT_WATCH_SECONDS}), until the job ends")

    rerun = command(commands, "rerun", changes.rerun,
                    "submit a finished job again as a new job (same image, script and spec)")
    rerun.add_argument("-j", "--job", required=True, metavar="ID")
    rerun.add_argument("--reason", help="why, kept in the new job's history")

    command(commands, "version", opcenter.version, "this float's release and the OpCenter's")
    command(commands, "status", opcenter.status,
            "whether the OpCenter answers, its release, and who you are logged in as")
    release_group = commands.add_parser("release", help="the OpCenter's release",
                                        description="the OpCenter's release")
    release = release_group.add_subparsers(dest="release_command", required=True,
                                           metavar="SUBCOMMAND")
    command(release, "sync", opcenter.release_sync,
            "say which release the OpCenter runs and whether this float matches it")

    license_group = commands.add_parser("license", help="the OpCenter's license (admins)",
                                        description="the OpCenter's license (admins)")
    license_commands = license_group.add_subparsers(dest="license_command", required=True,
                                                    metavar="SUBCOMMAND")
    command(license_commands, "apply", licenses.apply,
            "apply a signed license file; jobs waiting for one start").add_argument("file")
    command(license_commands, "info", licenses.info,
            "this OpCenter's id, its license, and this month's core-hours")
    command(license_commands, "remove", licenses.remove,
            "remove the license (running jobs go on; new ones wait)").add_argument(
        "-f", "--force", action="store_true", help="do not ask")

    report_group = commands.add_parser("report", help="what jobs used",
                                       description="what jobs used")
    report = report_group.add_subparsers(dest="report_command", required=True,
                                         metavar="SUBCOMMAND")
    for name, run, text in (
            ("usage", reports.usage, "a month's vCPU core-hours by user (yours only, unless "
             "admin)"),
            ("cost", reports.cost, "a month's spend by user, against On-demand (yours only, "
             "unless admin)")):
        sub = command(report, name, run, text)
        sub.add_argument("--month", metavar="YYYY-MM", help="default: this month (UTC)")
        sub.add_argument("--user", metavar="U", help="one user (admins)")

    image_group = commands.add_parser("image", help="the Application Library",
                                      description="the Application Library")
    image = image_group.add_subparsers(dest="image_command", required=True, metavar="SUBCOMMAND")
    for name, run, text in (("add", images.add, "add an image"),
                            ("update", images.update, "change an image's URI or credentials")):
        sub = command(image, name, run, text, own=["username"])
        sub.add_argument("name")
        if name == "add":
            sub.add_argument("uri")
        else:
            sub.add_argument("--uri")
            sub.add_argument("--public", action="store_true", help="drop its credentials")
        sub.add_argument("--username", dest="registry_username", help="registry username")
        sub.add_argument("--token", help="registry token (or --token-stdin)")
        sub.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    command(image, "list", images.list_images, "list the library")
    command(image, "show", images.show, "show an image").add_argument("name")
    command(image, "delete", images.delete, "remove an image").add_argument("name")

    user_group = commands.add_parser("user", help="users (admins only)",
                                     description="users (admins only)")
    user = user_group.add_subparsers(dest="user_command", required=True, metavar="SUBCOMMAND")
    add_user = command(user, "add", users.add, "create a user", own=["password"])
    add_user.add_argument("username")
    add_user.add_argument("--password", dest="new_password", help="asked for when not given")
    add_user.add_argument("--role", choices=("admin", "user"), default="user")
    command(user, "list", users.list_users, "list users")
    command(user, "delete", users.delete, "delete a user").add_argument("username")
    passwd = command(user, "passwd", users.passwd, "change your password (admins: anyone's)",
                     own=["password"])
    passwd.add_argument("username", nargs="?", help="whose (default: yours)")
    passwd.add_argument("--password", dest="new_password", help="asked for when not given")
    passwd.add_argument("--current-password", dest="current_password",
                        help="yours, when changing your own (asked for when not given)")
    add_secret_commands(commands, command)
    add_storage_commands(commands, command)
    return parser


def add_secret_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    group = commands.add_parser("secret", help="your secrets (values kept for your jobs)",
                                description="your secrets: named values only you and your jobs "
                                "read (inside a job: float secret get NAME)")
    secret = group.add_subparsers(dest="secret_command", required=True, metavar="SUBCOMMAND")
    put = command(secret, "set", secret_commands.set_secret,
                  "keep a value under a name (replaces the value it had)")
    put.add_argument("name", help="letters, digits, _ - and . (at most 128)")
    put.add_argument("value", nargs="?", help="the value (or --stdin)")
    put.add_argument("--stdin", action="store_true",
                     help="read the value from stdin (kept off the command line)")
    command(secret, "get", secret_commands.get_secret,
            "print a secret's value alone").add_argument("name")
    command(secret, "unset", secret_commands.unset_secret,
            "delete a secret").add_argument("name")
    command(secret, "ls", secret_commands.list_secrets, "list your secrets' names (not values)",
            aliases=["list"])


def add_storage_commands(commands: Any, command: Callable[..., argparse.ArgumentParser]) -> None:
    group = commands.add_parser("storage", help="named S3 or NFS storage for submit --storage",
                                description="named S3 or NFS storage, mounted into a job with "
                                "float submit --storage NAME")
    storage = group.add_subparsers(dest="storage_command", required=True, metavar="SUBCOMMAND")
    register = command(storage, "register", storage_commands.register,
                       "register a named storage (s3: -b, nfs: --server and --path)")
    register.add_argument("-n", "--name", dest="storage_name", required=True, metavar="NAME")
    register.add_argument("-t", "--type", required=True, choices=("s3", "nfs"))
    register.add_argument("-m", "--mountPoint", required=True, metavar="PATH",
                          help="where jobs see it, e.g. /mnt/data")
    register.add_argument("-b", "--bucket", metavar="BUCKET[/PREFIX]", help="s3: the bucket")
    register.add_argument("--server", metavar="HOST", help="nfs: the NFS server")
    register.add_argument("--path", metavar="EXPORT", help="nfs: the exported directory")
    register.add_argument("--mode", choices=("r", "rw"), help="read-only or read-write "
                          "(default rw)")
    register.add_argument("-e", "--endpoint", metavar="URL",
                          help="s3: the endpoint, host[:port] or http(s)://host[:port] "
                          "(default: AWS S3)")
    register.add_argument("-k", "--accessKey", metavar="KEY",
                          help="s3: access key id (default: the worker's own role)")
    register.add_argument("-s", "--secret", metavar="KEY", help="s3: secret access key")
    register.add_argument("--token", metavar="TOKEN", help="s3: session token, with -k and -s")
    command(storage, "list", storage_commands.list_storage, "list your storage", aliases=["ls"])
    remove = command(storage, "remove", storage_commands.remove,
                     "remove a storage (jobs already submitted with it keep it)",
                     aliases=["rm"])
    remove.add_argument("name", nargs="?")
    remove.add_argument("-n", "--name", dest="storage_name", metavar="NAME")


def _flags_of(parser: argparse.ArgumentParser) -> tuple[set[str], dict[str, Any]]:
    """The option strings of this parser that take a value, and its commands by name."""
    takes_value: set[str] = set()
    commands: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
        elif action.option_strings and action.nargs is None:
            takes_value.update(action.option_strings)
    return takes_value, commands


def join_dash_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """MMCloud's CLI reads the word after a flag that takes a value as that value, even when
    it starts with `-` (`--extraOptions -v`, `-n -x`); argparse would take it for a flag. Such
    pairs are joined (`--extraOptions=-v`, `-n-x`) so argparse reads them the same way. Which
    flags take a value depends on the command (`list -f FILTER`, `submit -f`)."""
    takes_value, commands = _flags_of(parser)
    joined: list[str] = []
    words = list(argv)
    index = 0
    while index < len(words):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else None
        if word in takes_value and following is not None:
            if following.startswith("-") and following != "--":
                joined.append(f"{word}={following}" if word.startswith("--") else f"{word}{following}")
            else:
                joined += [word, following]
            index += 2
            continue
        if word in commands:
            takes_value, commands = _flags_of(commands[word])
        joined.append(word)
        index += 1
    return joined


def expand_extra_options(words: list[str]) -> list[str]:
    """`--extraOptions "--vmPolicy [onDemand=true] --storage data"` (one word, as pipeline
    plugins pass it) becomes the flags it holds, read as if typed where it stands."""
    expanded: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--extraOptions" and index + 1 < len(words):
            text, index = words[index + 1], index + 2
        elif word.startswith("--extraOptions="):
            text, index = word.partition("=")[2], index + 1
        else:
            expanded.append(word)
            index += 1
            continue
        try:
            expanded += shlex.split(text)
        except ValueError as error:
            raise UsageError(f"cannot read --extraOptions {text!r}: {error}") from None
    return expanded


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `float` command; the exit code is 0, 1 (it failed) or 2 (usage error)."""
    try:
        parser = build_parser()
        words = join_dash_values(parser, sys.argv[1:] if argv is None else argv)
        if any(w == "--extraOptions" or w.startswith("--extraOptions=") for w in words):
            words = join_dash_values(parser, expand_extra_options(words))
        args = parser.parse_args(words)
        args.run(args)
        return 0
    except CliError as error:
        _fail(error.message)
        return error.exit_code
    except BrokenPipeError:  # `float list | head`: the reader left; stop quietly like cat does
        _drop_stdout()
        return 1
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    except SystemExit as done:  # --help
        return done.code if isinstance(done.code, int) else 0
    except Exception as error:  # noqa: BLE001 - a user sees one line, never a traceback
        _fail(f"unexpected error: {type(error).__name__}: {error}")
        return 1


def _seconds(text: str) -> int:
    """A whole number of seconds, written `120` or `120s`."""
    number = text.strip().removesuffix("s")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds such as 120 or 120s")
    return int(number)


def _drop_stdout() -> None:
    # Later writes (the interpreter's final flush) go nowhere instead of raising again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _fail(message: str) -> None:
    sys.stderr.write(f"float: {' '.join(message.split())}\n")
