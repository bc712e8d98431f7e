locals {
  labels = {
    "app.kubernetes.io/part-of"    = "zongzhi"
    "app.kubernetes.io/managed-by" = "terraform"
    "zongzhi/size"                 = var.size
  }

  # Mirror of zongzhi.processes.PROCESSES (tests/infra/test_terraform.py keeps them equal):
  # every process the code can start, with the command it is started with.
  processes = {
    api              = { command = ["serve", "--host", "0.0.0.0", "--port", "8000", "--no-workers"], servers = ["nats", "postgres"], scaling = "replicas" }
    projector        = { command = ["projections", "run"], servers = ["postgres"], scaling = "per-city" }
    router           = { command = ["router"], servers = ["postgres"], scaling = "per-city" }
    scheduler        = { command = ["scheduler", "--every", "60"], servers = ["postgres"], scaling = "per-city" }
    audit-chain      = { command = ["audit", "chain", "--follow"], servers = ["postgres"], scaling = "per-city" }
    audit-checkpoint = { command = ["audit", "checkpoint"], servers = ["nats", "postgres"], scaling = "schedule" }
    vision-worker    = { command = ["/etc/zongzhi/cameras.json"], servers = ["nats", "triton"], scaling = "per-camera-group" }
    alert-service    = { command = ["alerts"], servers = ["nats", "postgres"], scaling = "per-city" }
  }

  otel_endpoint = "http://otel-collector.${var.namespace}.svc:4318"
  nats_url      = "nats://nats.${var.namespace}.svc:4222"
  triton_url    = "triton.${var.namespace}.svc:8001"

  # Settings every product process gets; secrets only by reference.
  common_env = {
    ZONGZHI_DATA_DIR = "/tmp/zongzhi" # scratch only: servers and keys come from the variables below
  }
  database_env = {
    ZONGZHI_DATABASE_URL = { secret = var.secrets.database, key = "url" }
  }
  master_key_env = {
    ZONGZHI_MASTER_KEY = { secret = var.secrets.keys, key = "master" }
  }
  audit_key_env = {
    ZONGZHI_AUDIT_KEY = { secret = var.secrets.keys, key = "audit" }
  }
}
