# The OpenTelemetry collector: every process sends OTLP/HTTP here (4318); it batches,
# limits its memory, scrapes Triton's and NATS's metrics, and exports to the backend.

locals {
  otel_labels = merge(local.labels, { "app.kubernetes.io/name" = "otel-collector" })
}

resource "kubernetes_config_map_v1" "otel" {
  metadata {
    name      = "otel-collector"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.otel_labels
  }
  data = {
    "config.yaml" = yamlencode({
      receivers = {
        otlp = { protocols = { http = { endpoint = "0.0.0.0:4318" } } }
        prometheus = { config = { scrape_configs = [
          { job_name = "triton", scrape_interval = "15s", static_configs = [{ targets = ["triton.${var.namespace}.svc:8002"] }] },
          { job_name = "nats", scrape_interval = "15s", metrics_path = "/varz", static_configs = [{ targets = ["nats.${var.namespace}.svc:8222"] }] },
        ] } }
      }
      processors = {
        memory_limiter = { check_interval = "1s", limit_percentage = 80, spike_limit_percentage = 20 }
        batch          = {}
      }
      exporters = {
        otlphttp = { endpoint = var.otel_backend_endpoint }
      }
      extensions = { health_check = { endpoint = "0.0.0.0:13133" } }
      service = {
        extensions = ["health_check"]
        pipelines = {
          traces  = { receivers = ["otlp"], processors = ["memory_limiter", "batch"], exporters = ["otlphttp"] }
          metrics = { receivers = ["otlp", "prometheus"], processors = ["memory_limiter", "batch"], exporters = ["otlphttp"] }
          logs    = { receivers = ["otlp"], processors = ["memory_limiter", "batch"], exporters = ["otlphttp"] }
        }
      }
    })
  }
}

resource "kubernetes_deployment_v1" "otel" {
  metadata {
    name      = "otel-collector"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.otel_labels
  }
  spec {
    replicas = 2
    selector {
      match_labels = { "app.kubernetes.io/name" = "otel-collector" }
    }
    template {
      metadata {
        labels = local.otel_labels
      }
      spec {
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "otel-collector"
          image             = "${var.images["otel-collector"].repository}@${var.images["otel-collector"].digest}"
          image_pull_policy = "Always"
          args              = ["--config=/conf/config.yaml"]
          port {
            name           = "otlp-http"
            container_port = 4318
          }
          resources {
            requests = { cpu = "200m", memory = "256Mi" }
            limits   = { cpu = "1", memory = "512Mi" }
          }
          liveness_probe {
            http_get {
              path = "/"
              port = 13133
            }
            period_seconds = 15
          }
          readiness_probe {
            http_get {
              path = "/"
              port = 13133
            }
            period_seconds = 5
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            privileged                 = false
            capabilities {
              drop = ["ALL"]
            }
          }
          volume_mount {
            name       = "conf"
            mount_path = "/conf"
            read_only  = true
          }
        }
        volume {
          name = "conf"
          config_map {
            name = kubernetes_config_map_v1.otel.metadata[0].name
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "otel" {
  metadata {
    name      = "otel-collector"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.otel_labels
  }
  spec {
    selector = { "app.kubernetes.io/name" = "otel-collector" }
    port {
      name        = "otlp-http"
      port        = 4318
      target_port = 4318
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "otel" {
  metadata {
    name      = "otel-collector"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.otel_labels
  }
  spec {
    min_available = "1"
    selector {
      match_labels = { "app.kubernetes.io/name" = "otel-collector" }
    }
  }
}

resource "kubernetes_network_policy_v1" "otel" {
  metadata {
    name      = "otel-collector"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.otel_labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "otel-collector" }
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "zongzhi" }
        }
      }
      ports {
        port     = "4318"
        protocol = "TCP"
      }
    }
    egress {
      to {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "triton" }
        }
      }
      ports {
        port     = "8002"
        protocol = "TCP"
      }
    }
    egress {
      to {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "nats" }
        }
      }
      ports {
        port     = "8222"
        protocol = "TCP"
      }
    }
    egress { # the telemetry backend
      dynamic "to" {
        for_each = var.egress_cidrs
        content {
          ip_block {
            cidr = to.value
          }
        }
      }
      ports {
        port     = "443"
        protocol = "TCP"
      }
    }
  }
}
