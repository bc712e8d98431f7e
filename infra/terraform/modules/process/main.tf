locals {
  shards = var.shard_files != null ? { for i, _ in var.shard_files : tostring(i) => [] } : { for i, cities in var.shards : tostring(i) => cities }
  # One workload per shard; a single shard keeps the process's own name.
  workload_names = { for i, _ in local.shards : i => length(local.shards) == 1 ? var.name : "${var.name}-${i}" }
  args           = { for i, cities in local.shards : i => concat(var.command, flatten([for c in cities : ["--city", c]])) }
  labels         = merge(var.labels, { "app.kubernetes.io/name" = "zongzhi", "app.kubernetes.io/component" = var.name })
  probe_command  = concat(["python", "-m", "zongzhi.probe"], var.servers)
  deployments    = var.schedule == null ? local.shards : {}
  server_ports = {
    postgres = { app = "pgbouncer", port = 6432 }
    nats     = { app = "nats", port = 4222 }
    triton   = { app = "triton", port = 8001 }
  }
}

resource "kubernetes_deployment_v1" "this" {
  for_each = local.deployments

  metadata {
    name      = local.workload_names[each.key]
    namespace = var.namespace
    labels    = merge(local.labels, { "zongzhi/shard" = each.key })
  }

  spec {
    replicas = var.autoscale == null ? var.replicas : null
    selector {
      match_labels = { "app.kubernetes.io/component" = var.name, "zongzhi/shard" = each.key }
    }
    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_surge       = "1"
        max_unavailable = "0"
      }
    }
    template {
      metadata {
        labels = merge(local.labels, { "zongzhi/shard" = each.key })
      }
      spec {
        automount_service_account_token  = false
        termination_grace_period_seconds = 30
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        topology_spread_constraint {
          max_skew           = 1
          topology_key       = "kubernetes.io/hostname"
          when_unsatisfiable = "ScheduleAnyway"
          label_selector {
            match_labels = { "app.kubernetes.io/component" = var.name }
          }
        }
        container {
          name              = var.name
          image             = var.image
          image_pull_policy = "Always"
          command           = var.entrypoint
          args              = local.args[each.key]

          dynamic "port" {
            for_each = var.http_port == null ? [] : [var.http_port]
            content {
              name           = "http"
              container_port = port.value
            }
          }

          dynamic "env" {
            for_each = var.env
            content {
              name  = env.key
              value = env.value
            }
          }
          dynamic "env" {
            for_each = var.secret_env
            content {
              name = env.key
              value_from {
                secret_key_ref {
                  name = env.value.secret
                  key  = env.value.key
                }
              }
            }
          }

          resources {
            requests = { cpu = var.resources.cpu, memory = var.resources.memory }
            limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
          }

          # HTTP processes: /healthz (the process is up), /readyz (the database answers).
          dynamic "liveness_probe" {
            for_each = var.http_port == null ? [] : [var.http_port]
            content {
              http_get {
                path = "/healthz"
                port = liveness_probe.value
              }
              period_seconds    = 10
              failure_threshold = 3
            }
          }
          dynamic "readiness_probe" {
            for_each = var.http_port == null ? [] : [var.http_port]
            content {
              http_get {
                path = "/readyz"
                port = readiness_probe.value
              }
              period_seconds    = 5
              failure_threshold = 2
            }
          }
          # Workers: zongzhi.probe checks that their servers answer. Liveness tolerates
          # five minutes of outage before a restart (a fresh pool, then catch-up from
          # the positions kept in PostgreSQL).
          dynamic "liveness_probe" {
            for_each = var.http_port == null ? [1] : []
            content {
              exec {
                command = local.probe_command
              }
              initial_delay_seconds = 20
              period_seconds        = 30
              timeout_seconds       = 10
              failure_threshold     = 10
            }
          }
          dynamic "readiness_probe" {
            for_each = var.http_port == null ? [1] : []
            content {
              exec {
                command = local.probe_command
              }
              period_seconds  = 15
              timeout_seconds = 10
            }
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
            name       = "tmp"
            mount_path = "/tmp"
          }
          dynamic "volume_mount" {
            for_each = var.shard_files == null ? [] : [each.key]
            content {
              name       = "shard"
              mount_path = var.file_path
              sub_path   = "shard-${volume_mount.value}"
              read_only  = true
            }
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "256Mi"
          }
        }
        dynamic "volume" {
          for_each = var.shard_files == null ? [] : [1]
          content {
            name = "shard"
            config_map {
              name = kubernetes_config_map_v1.shards[0].metadata[0].name
            }
          }
        }
      }
    }
  }
}

resource "kubernetes_config_map_v1" "shards" {
  count = var.shard_files == null ? 0 : 1

  metadata {
    name      = "${var.name}-shards"
    namespace = var.namespace
    labels    = local.labels
  }
  data = { for i, content in var.shard_files : "shard-${i}" => content }
}

resource "kubernetes_cron_job_v1" "this" {
  count = var.schedule == null ? 0 : 1

  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    schedule                      = var.schedule
    concurrency_policy            = "Forbid"
    successful_jobs_history_limit = 3
    failed_jobs_history_limit     = 5
    job_template {
      metadata {
        labels = local.labels
      }
      spec {
        backoff_limit           = 2
        active_deadline_seconds = 540
        template {
          metadata {
            labels = local.labels
          }
          spec {
            restart_policy                  = "Never"
            automount_service_account_token = false
            security_context {
              run_as_non_root = true
              run_as_user     = 10001
              run_as_group    = 10001
              fs_group        = 10001
              seccomp_profile {
                type = "RuntimeDefault"
              }
            }
            container {
              name              = var.name
              image             = var.image
              image_pull_policy = "Always"
              args              = local.args["0"]
              dynamic "env" {
                for_each = var.env
                content {
                  name  = env.key
                  value = env.value
                }
              }
              dynamic "env" {
                for_each = var.secret_env
                content {
                  name = env.key
                  value_from {
                    secret_key_ref {
                      name = env.value.secret
                      key  = env.value.key
                    }
                  }
                }
              }
              resources {
                requests = { cpu = var.resources.cpu, memory = var.resources.memory }
                limits   = { cpu = var.resources.cpu_limit, memory = var.resources.memory_limit }
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
                name       = "tmp"
                mount_path = "/tmp"
              }
            }
            volume {
              name = "tmp"
              empty_dir {
                size_limit = "256Mi"
              }
            }
          }
        }
      }
    }
  }
}

resource "kubernetes_horizontal_pod_autoscaler_v2" "this" {
  for_each = var.autoscale == null ? {} : local.deployments

  metadata {
    name      = local.workload_names[each.key]
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    min_replicas = var.autoscale.min
    max_replicas = var.autoscale.max
    scale_target_ref {
      api_version = "apps/v1"
      kind        = "Deployment"
      name        = kubernetes_deployment_v1.this[each.key].metadata[0].name
    }
    metric {
      type = "Resource"
      resource {
        name = "cpu"
        target {
          type                = "Utilization"
          average_utilization = var.autoscale.cpu_target
        }
      }
    }
    behavior {
      scale_down {
        stabilization_window_seconds = 300
        select_policy                = "Max"
        policy {
          type           = "Pods"
          value          = 1
          period_seconds = 60
        }
      }
    }
  }
}

# A drain evicts at most one pod of a workload at a time; for a single-copy worker
# that is the copy itself (it resumes from its position), never a blocked drain.
resource "kubernetes_pod_disruption_budget_v1" "this" {
  for_each = local.deployments

  metadata {
    name      = local.workload_names[each.key]
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    max_unavailable = "1"
    selector {
      match_labels = { "app.kubernetes.io/component" = var.name, "zongzhi/shard" = each.key }
    }
  }
}

# Only the flows this process needs: its servers, the collector, DNS, and (the API)
# the ingress controller and the OIDC provider.
resource "kubernetes_network_policy_v1" "this" {
  metadata {
    name      = var.name
    namespace = var.namespace
    labels    = local.labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/component" = var.name }
    }
    policy_types = ["Ingress", "Egress"]

    dynamic "ingress" {
      for_each = var.http_port != null && var.ingress_from_namespace != null ? [var.http_port] : []
      content {
        from {
          namespace_selector {
            match_labels = { "kubernetes.io/metadata.name" = var.ingress_from_namespace }
          }
        }
        ports {
          port     = tostring(ingress.value)
          protocol = "TCP"
        }
      }
    }

    dynamic "egress" {
      for_each = { for s in var.servers : s => local.server_ports[s] }
      content {
        to {
          pod_selector {
            match_labels = { "app.kubernetes.io/name" = egress.value.app }
          }
        }
        ports {
          port     = tostring(egress.value.port)
          protocol = "TCP"
        }
      }
    }
    egress {
      to {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "otel-collector" }
        }
      }
      ports {
        port     = "4318"
        protocol = "TCP"
      }
    }
    egress {
      to {
        namespace_selector {
          match_labels = { "kubernetes.io/metadata.name" = "kube-system" }
        }
        pod_selector {
          match_labels = { "k8s-app" = "kube-dns" }
        }
      }
      ports {
        port     = "53"
        protocol = "UDP"
      }
      ports {
        port     = "53"
        protocol = "TCP"
      }
    }
    dynamic "egress" {
      for_each = var.egress
      content {
        dynamic "to" {
          for_each = egress.value.cidrs
          content {
            ip_block {
              cidr = to.value
            }
          }
        }
        ports {
          port     = tostring(egress.value.port)
          protocol = "TCP"
        }
      }
    }
  }
}

output "workloads" {
  description = "names of the Deployments (or the CronJob) running this process"
  value       = var.schedule == null ? [for k, d in kubernetes_deployment_v1.this : d.metadata[0].name] : [var.name]
}
