# NATS JetStream: a 3-server cluster (the official chart) and the product's streams at
# R3, created before any process runs. The code creates a stream only when it is
# missing (audit/checkpoints.py), so it finds these replicated ones and uses them.

locals {
  nats_labels = merge(local.labels, { "app.kubernetes.io/name" = "nats" })
  # One file per stream, in the JSON that `nats stream add --config` reads.
  streams = {
    ZONGZHI_AUDIT = {
      subjects = ["zongzhi.audit.checkpoints.>"], retention = "limits", storage = "file",
      max_msgs_per_subject = -1, max_age = 0, deny_delete = true, deny_purge = true,
      num_replicas = var.nats.stream_replica, duplicate_window = 120000000000,
      description = "signed checkpoints of zongzhi's audit chains (never expire)"
    }
    ZZ_DETECTIONS = {
      subjects = ["zz.detections.>"], retention = "limits", storage = "file",
      max_msgs_per_subject = -1, max_age = 3600000000000, deny_delete = false, deny_purge = false,
      num_replicas = var.nats.stream_replica, duplicate_window = 120000000000,
      description = "frames' detections from the vision workers (one hour)"
    }
    ZZ_ALERTS = {
      subjects = ["zz.alerts.>"], retention = "limits", storage = "file",
      max_msgs_per_subject = -1, max_age = 604800000000000, deny_delete = false, deny_purge = false,
      num_replicas = var.nats.stream_replica, duplicate_window = 120000000000,
      description = "camera alerts for the staff's screens (seven days)"
    }
  }
}

resource "helm_release" "nats" {
  name       = "nats"
  namespace  = kubernetes_namespace_v1.zongzhi.metadata[0].name
  repository = "https://nats-io.github.io/k8s/helm/charts/"
  chart      = "nats"
  version    = var.nats.chart_version
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    config = {
      cluster = { enabled = true, replicas = var.nats.replicas }
      jetstream = {
        enabled = true
        fileStore = {
          enabled = true
          pvc     = { enabled = true, size = var.nats.storage, storageClassName = var.storage_class }
        }
        memoryStore = { enabled = false }
      }
      monitor = { enabled = true, port = 8222 }
    }
    container = {
      image = { repository = var.images["nats"].repository, digest = var.images["nats"].digest, pullPolicy = "Always" }
      merge = {
        resources = {
          requests = { cpu = var.nats.cpu, memory = var.nats.memory }
          limits   = { cpu = var.nats.cpu, memory = var.nats.memory }
        }
        securityContext = {
          allowPrivilegeEscalation = false, readOnlyRootFilesystem = true,
          capabilities             = { drop = ["ALL"] }
        }
      }
    }
    reloader = { enabled = false }
    natsBox  = { enabled = false } # streams are made by the job below
    podTemplate = {
      merge = {
        metadata = { labels = local.nats_labels }
        spec = {
          automountServiceAccountToken = false
          securityContext = {
            runAsNonRoot = true, runAsUser = 1000, runAsGroup = 1000, fsGroup = 1000,
            seccompProfile = { type = "RuntimeDefault" }
          }
        }
      }
      topologySpreadConstraints = {
        "kubernetes.io/hostname" = { maxSkew = 1, whenUnsatisfiable = "DoNotSchedule" }
      }
    }
    podDisruptionBudget = { enabled = true } # maxUnavailable 1: the quorum of 2 survives a drain
  })]
}

resource "kubernetes_config_map_v1" "nats_streams" {
  metadata {
    name      = "nats-streams"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.nats_labels
  }
  data = merge(
    { for name, s in local.streams : "${name}.json" => jsonencode(merge(s, { name = name })) },
    {
      "streams.sh" = <<-SH
        #!/bin/sh
        set -eu
        for f in /streams/*.json; do
          name=$(basename "$f" .json)
          nats --server "${local.nats_url}" stream info "$name" >/dev/null 2>&1 \
            || nats --server "${local.nats_url}" stream add "$name" --config "$f"
        done
      SH
    },
  )
}

resource "kubernetes_job_v1" "nats_streams" {
  depends_on = [helm_release.nats]

  metadata {
    name      = "nats-streams"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = merge(local.nats_labels, { "zongzhi/nats-role" = "streams" })
  }
  wait_for_completion = true
  timeouts {
    create = "10m"
  }
  spec {
    backoff_limit = 10
    template {
      metadata {
        labels = merge(local.nats_labels, { "zongzhi/nats-role" = "streams" })
      }
      spec {
        restart_policy                  = "OnFailure"
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 1000
          run_as_group    = 1000
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "streams"
          image             = "${var.images["nats-box"].repository}@${var.images["nats-box"].digest}"
          image_pull_policy = "Always"
          command           = ["/bin/sh", "/streams/streams.sh"]
          resources {
            requests = { cpu = "50m", memory = "64Mi" }
            limits   = { cpu = "200m", memory = "128Mi" }
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
            name       = "streams"
            mount_path = "/streams"
            read_only  = true
          }
        }
        volume {
          name = "streams"
          config_map {
            name = kubernetes_config_map_v1.nats_streams.metadata[0].name
          }
        }
      }
    }
  }
}

# Clients (product processes and the streams job) on 4222; the servers among
# themselves on 6222 (routes); the collector scrapes 8222.
resource "kubernetes_network_policy_v1" "nats" {
  metadata {
    name      = "nats"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.nats_labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "nats" }
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "zongzhi" }
        }
      }
      from {
        pod_selector {
          match_labels = { "zongzhi/nats-role" = "streams" }
        }
      }
      ports {
        port     = "4222"
        protocol = "TCP"
      }
    }
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "nats" }
        }
      }
      ports {
        port     = "6222"
        protocol = "TCP"
      }
    }
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "otel-collector" }
        }
      }
      ports {
        port     = "8222"
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
        port     = "6222"
        protocol = "TCP"
      }
      ports {
        port     = "4222"
        protocol = "TCP"
      }
    }
  }
}
