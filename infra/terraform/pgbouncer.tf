# PgBouncer caps and queues connections to the coordinator. Session pooling: the
# followers LISTEN on their log group's channel, which transaction pooling would break.
# Budget (docs/scaling.md): max_client_conn per replica >= the sum of the processes'
# pools; default_pool_size x replicas < the coordinator's max_connections minus
# Citus's own connections and a reserve for the operator.

locals {
  pgbouncer_labels = merge(local.labels, { "app.kubernetes.io/name" = "pgbouncer" })
}

resource "kubernetes_config_map_v1" "pgbouncer" {
  metadata {
    name      = "pgbouncer"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.pgbouncer_labels
  }
  data = {
    "pgbouncer.ini" = <<-INI
      [databases]
      * = host=${local.coordinator_host} port=5432
      [pgbouncer]
      listen_addr = 0.0.0.0
      listen_port = 6432
      unix_socket_dir =
      auth_type = scram-sha-256
      auth_file = /etc/pgbouncer/secret/userlist.txt
      pool_mode = session
      max_client_conn = ${var.pgbouncer.max_client_conn}
      default_pool_size = ${var.pgbouncer.default_pool_size}
      reserve_pool_size = 5
      server_tls_sslmode = prefer
      ignore_startup_parameters = extra_float_digits,options
      admin_users = postgres
    INI
  }
}

resource "kubernetes_deployment_v1" "pgbouncer" {
  metadata {
    name      = "pgbouncer"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.pgbouncer_labels
  }
  spec {
    replicas = var.pgbouncer.replicas
    selector {
      match_labels = { "app.kubernetes.io/name" = "pgbouncer" }
    }
    template {
      metadata {
        labels = local.pgbouncer_labels
      }
      spec {
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 70
          run_as_group    = 70
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        affinity {
          pod_anti_affinity {
            preferred_during_scheduling_ignored_during_execution {
              weight = 100
              pod_affinity_term {
                topology_key = "kubernetes.io/hostname"
                label_selector {
                  match_labels = { "app.kubernetes.io/name" = "pgbouncer" }
                }
              }
            }
          }
        }
        container {
          name              = "pgbouncer"
          image             = "${var.images["pgbouncer"].repository}@${var.images["pgbouncer"].digest}"
          image_pull_policy = "Always"
          args              = ["/etc/pgbouncer/pgbouncer.ini"]
          port {
            name           = "postgres"
            container_port = 6432
          }
          resources {
            requests = { cpu = "250m", memory = "128Mi" }
            limits   = { cpu = "1", memory = "256Mi" }
          }
          readiness_probe {
            tcp_socket {
              port = 6432
            }
            period_seconds = 5
          }
          liveness_probe {
            tcp_socket {
              port = 6432
            }
            initial_delay_seconds = 10
            period_seconds        = 20
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
            name       = "config"
            mount_path = "/etc/pgbouncer/pgbouncer.ini"
            sub_path   = "pgbouncer.ini"
            read_only  = true
          }
          volume_mount {
            name       = "userlist"
            mount_path = "/etc/pgbouncer/secret"
            read_only  = true
          }
        }
        volume {
          name = "config"
          config_map {
            name = kubernetes_config_map_v1.pgbouncer.metadata[0].name
          }
        }
        volume {
          name = "userlist"
          secret {
            secret_name = var.secrets.database # key userlist.txt: "postgres" "SCRAM-SHA-256$..."
            items {
              key  = "userlist.txt"
              path = "userlist.txt"
            }
          }
        }
      }
    }
  }
}

resource "kubernetes_service_v1" "pgbouncer" {
  metadata {
    name      = "pgbouncer"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.pgbouncer_labels
  }
  spec {
    selector = { "app.kubernetes.io/name" = "pgbouncer" }
    port {
      name        = "postgres"
      port        = 6432
      target_port = 6432
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "pgbouncer" {
  metadata {
    name      = "pgbouncer"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.pgbouncer_labels
  }
  spec {
    min_available = "1"
    selector {
      match_labels = { "app.kubernetes.io/name" = "pgbouncer" }
    }
  }
}

# Product processes (label app.kubernetes.io/name=zongzhi) in; the coordinator out.
resource "kubernetes_network_policy_v1" "pgbouncer" {
  metadata {
    name      = "pgbouncer"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.pgbouncer_labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "pgbouncer" }
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "zongzhi" }
        }
      }
      ports {
        port     = "6432"
        protocol = "TCP"
      }
    }
    egress {
      to {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "citus", "zongzhi/citus-role" = "coordinator" }
        }
      }
      ports {
        port     = "5432"
        protocol = "TCP"
      }
    }
  }
}
