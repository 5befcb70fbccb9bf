"""A job runs `float migrate` and `float show` on itself from inside its container: no
credential in the container, the agent making the call with the job's own token."""

from chalicelib.wire.agent import RunCommand
from tests.cli.fake_opcenter import job_json, serving
from tests.containers.conftest import BUSYBOX, wait_for

SCRIPT = """\
echo loaded
float migrate -f --instType c5.2xlarge --reason "data loaded" --format json > /tmp/moved.json
echo "migrate rc=$?"
grep -c '"status": "Capturing"' /tmp/moved.json
float show --format json | grep -c '"id": "selfish"'
float list
echo "list rc=$?"
echo "token in env: $(env | grep -c FLOAT_TOKEN)"
echo "job id in env: $FLOAT_JOB_ID"
"""


def test_a_job_migrates_itself_with_float_from_inside_its_container(fleet):
    fleet.aws.client("secretsmanager").create_secret(Name="selfish-token",
                                                     SecretString="token-of-selfish")
    with serving() as opcenter:
        opcenter.reply("POST", "/v1/jobs/selfish/migrate", job_json("selfish", "Capturing"), 202)
        opcenter.reply("GET", "/v1/jobs/selfish", job_json("selfish", "Executing"))
        agent = fleet.agent("i-selfish")
        launch = fleet.launch("selfish", BUSYBOX, SCRIPT, apiUrl=f"http://{opcenter.address}",
                              apiTokenSecretId="selfish-token")
        agent.handle(RunCommand(taskToken="run", job=launch))
        assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
        wait_for(lambda: agent.watch_job() or agent.serve_job_calls() or agent.job is None, 90,
                 "the job to end")

    stderr = fleet.log("selfish", "stderr")
    assert fleet.stdout("selfish").splitlines() == [
        "loaded", "migrate rc=0", "1", "1", "list rc=2", "token in env: 0",
        "job id in env: selfish"], stderr
    migrate, show = opcenter.requests
    assert (migrate.method, migrate.path) == ("POST", "/v1/jobs/selfish/migrate")
    assert migrate.body == {"instType": "c5.2xlarge", "force": True, "reason": "data loaded"}
    assert migrate.headers["authorization"] == "Bearer token-of-selfish"
    assert (show.method, show.path) == ("GET", "/v1/jobs/selfish")
    # The refused `float list` never reached the OpCenter; its reason went to the job's stderr.
    assert ("float: inside a job only migrate and show (on the job itself) and secret get work; "
            "got list") in stderr


# nf-float's job script, as its Global.groovy writes it.
NF_FLOAT_SCRIPT = """\
export AWS_ACCESS_KEY_ID=$(/opt/memverge/bin/float secret get AWS_ACCESS_KEY_ID_MY-RUN -a $FLOAT_ADDR)
echo "key: $AWS_ACCESS_KEY_ID"
echo "address given: $([ -n "$FLOAT_ADDR" ] && echo yes)"
/opt/memverge/bin/float secret get NOT-SET -a "$FLOAT_ADDR"
echo "missing rc=$?"
/opt/memverge/bin/float secret set AWS_ACCESS_KEY_ID_MY-RUN overwritten -a "$FLOAT_ADDR"
echo "set rc=$?"
"""


def test_a_job_script_reads_its_owners_secret_as_nf_float_writes_it(fleet):
    fleet.aws.client("secretsmanager").create_secret(Name="nf-token", SecretString="token-of-nf")
    with serving() as opcenter:
        opcenter.reply("GET", "/v1/secrets/AWS_ACCESS_KEY_ID_MY-RUN",
                       {"name": "AWS_ACCESS_KEY_ID_MY-RUN", "value": "AKIA-FROM-SECRET"})
        opcenter.reply("GET", "/v1/secrets/NOT-SET",
                       {"error": "NotFound", "message": "secret NOT-SET does not exist"}, 404)
        agent = fleet.agent("i-nf")
        launch = fleet.launch("nfjob", BUSYBOX, NF_FLOAT_SCRIPT,
                              apiUrl=f"http://{opcenter.address}", apiTokenSecretId="nf-token")
        agent.handle(RunCommand(taskToken="run", job=launch))
        assert "error" not in fleet.sfn.answers[-1], fleet.sfn.answers[-1]
        wait_for(lambda: agent.watch_job() or agent.serve_job_calls() or agent.job is None, 90,
                 "the job to end")

    stderr = fleet.log("nfjob", "stderr")
    assert fleet.stdout("nfjob").splitlines() == [
        "key: AKIA-FROM-SECRET", "address given: yes", "missing rc=1", "set rc=2"], stderr
    assert "float: secret NOT-SET does not exist" in stderr
    assert "float: inside a job only secret get works; got secret set" in stderr
    found, missing = opcenter.requests
    assert (found.method, found.path) == ("GET", "/v1/secrets/AWS_ACCESS_KEY_ID_MY-RUN")
    assert found.headers["authorization"] == "Bearer token-of-nf"
    assert missing.path == "/v1/secrets/NOT-SET"
