# PostgreSQL with Citus: a coordinator and N workers. Each city's log group is a schema
# (lg_<city>) and, with citus.enable_schema_based_sharding, a distributed schema: all its
# tables live together on one worker, moved whole by the rebalancer (docs/scaling.md).
# The registry (lg_registry) and the wrapped keys (zz_keys) stay on the coordinator.

locals {
  citus_labels     = merge(local.labels, { "app.kubernetes.io/name" = "citus" })
  citus_domain     = "${var.namespace}.svc"
  coordinator_host = "citus-coordinator-0.citus-coordinator.${local.citus_domain}"
  worker_hosts     = [for i in range(var.citus.workers) : "citus-worker-${i}.citus-worker.${local.citus_domain}"]
  postgres_args = [
    "-c", "shared_preload_libraries=citus,pg_stat_statements",
    "-c", "max_connections=${var.citus.max_connections}",
    "-c", "shared_buffers=${var.citus.shared_buffers}",
    "-c", "wal_level=logical", # shard moves use logical replication
    "-c", "max_wal_senders=20",
    "-c", "max_replication_slots=20",
    "-c", "archive_mode=on",
    "-c", "archive_command=${var.citus.wal_archive_command}",
    "-c", "archive_timeout=60",
    "-c", "citus.enable_schema_based_sharding=on",
    "-c", "password_encryption=scram-sha-256",
  ]
  citus_roles = {
    coordinator = { replicas = 1, cpu = var.citus.coordinator_cpu, memory = var.citus.coordinator_memory, storage = var.citus.coordinator_storage }
    worker      = { replicas = var.citus.workers, cpu = var.citus.worker_cpu, memory = var.citus.worker_memory, storage = var.citus.worker_storage }
  }
}

resource "kubernetes_config_map_v1" "citus_init" {
  metadata {
    name      = "citus-init"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.citus_labels
  }
  data = {
    # Runs once, at initdb, on every node (the image's own script creates the extension).
    "100-zongzhi.sql" = <<-SQL
      -- The registry and the keys are small, read everywhere, written rarely: they stay
      -- local to the coordinator instead of becoming distributed schemas.
      SET citus.enable_schema_based_sharding TO off;
      CREATE SCHEMA IF NOT EXISTS lg_registry;
      CREATE SCHEMA IF NOT EXISTS zz_keys;
      CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
    SQL
    # Registers the coordinator and every worker; safe to re-run (adding a worker).
    "membership.sh" = <<-SH
      #!/bin/sh
      set -eu
      until pg_isready -q -h "${local.coordinator_host}"; do sleep 2; done
      for w in ${join(" ", local.worker_hosts)}; do
        until pg_isready -q -h "$w"; do sleep 2; done
      done
      psql -v ON_ERROR_STOP=1 -v pw="$PGPASSWORD" -h "${local.coordinator_host}" -U postgres -d postgres <<SQL
      SELECT citus_set_coordinator_host('${local.coordinator_host}', 5432);
      INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo)
        VALUES (0, 'postgres', 'password=' || :'pw') ON CONFLICT (nodeid, rolename)
        DO UPDATE SET authinfo = EXCLUDED.authinfo;
      ${join("\n      ", [for h in local.worker_hosts : "SELECT citus_add_node('${h}', 5432);"])}
      SQL
    SH
  }
}

resource "kubernetes_service_v1" "citus" {
  for_each = local.citus_roles

  metadata {
    name      = "citus-${each.key}"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = merge(local.citus_labels, { "zongzhi/citus-role" = each.key })
  }
  spec {
    cluster_ip                  = "None" # stable per-pod names: citus-worker-0.citus-worker
    publish_not_ready_addresses = true
    selector                    = { "app.kubernetes.io/name" = "citus", "zongzhi/citus-role" = each.key }
    port {
      name        = "postgres"
      port        = 5432
      target_port = 5432
    }
  }
}

resource "kubernetes_stateful_set_v1" "citus" {
  for_each = local.citus_roles

  metadata {
    name      = "citus-${each.key}"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = merge(local.citus_labels, { "zongzhi/citus-role" = each.key })
  }
  spec {
    service_name          = kubernetes_service_v1.citus[each.key].metadata[0].name
    replicas              = each.value.replicas
    pod_management_policy = "Parallel"
    selector {
      match_labels = { "app.kubernetes.io/name" = "citus", "zongzhi/citus-role" = each.key }
    }
    update_strategy {
      type = "RollingUpdate"
    }
    template {
      metadata {
        labels = merge(local.citus_labels, { "zongzhi/citus-role" = each.key, "zongzhi/citus-node" = "true" })
      }
      spec {
        automount_service_account_token  = false
        termination_grace_period_seconds = 120
        security_context {
          run_as_non_root = true
          run_as_user     = 999 # postgres in the image
          run_as_group    = 999
          fs_group        = 999
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        affinity {
          pod_anti_affinity {
            required_during_scheduling_ignored_during_execution {
              topology_key = "kubernetes.io/hostname"
              label_selector {
                match_labels = { "zongzhi/citus-node" = "true" } # one database node per machine
              }
            }
          }
        }
        container {
          name              = "postgres"
          image             = "${var.images["citus"].repository}@${var.images["citus"].digest}"
          image_pull_policy = "Always"
          args              = local.postgres_args
          env {
            name  = "PGDATA"
            value = "/var/lib/postgresql/data/pgdata"
          }
          env {
            name = "POSTGRES_PASSWORD"
            value_from {
              secret_key_ref {
                name = var.secrets.database
                key  = "password"
              }
            }
          }
          port {
            name           = "postgres"
            container_port = 5432
          }
          resources {
            requests = { cpu = each.value.cpu, memory = each.value.memory }
            limits   = { cpu = each.value.cpu, memory = each.value.memory }
          }
          readiness_probe {
            exec {
              command = ["pg_isready", "-q", "-h", "127.0.0.1"]
            }
            period_seconds = 5
          }
          liveness_probe {
            exec {
              command = ["pg_isready", "-q", "-h", "127.0.0.1"]
            }
            initial_delay_seconds = 60
            period_seconds        = 20
            failure_threshold     = 6
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
            name       = "data"
            mount_path = "/var/lib/postgresql/data"
          }
          volume_mount {
            name       = "run"
            mount_path = "/var/run/postgresql"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          volume_mount {
            name       = "pgbackrest-log" # the root filesystem is read-only
            mount_path = "/var/log/pgbackrest"
          }
          volume_mount {
            name       = "init"
            mount_path = "/docker-entrypoint-initdb.d/100-zongzhi.sql"
            sub_path   = "100-zongzhi.sql"
            read_only  = true
          }
          volume_mount {
            name       = "backup"
            mount_path = "/etc/pgbackrest"
            read_only  = true
          }
        }
        volume {
          name = "run"
          empty_dir {}
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
        volume {
          name = "pgbackrest-log"
          empty_dir {}
        }
        volume {
          name = "init"
          config_map {
            name = kubernetes_config_map_v1.citus_init.metadata[0].name
          }
        }
        volume {
          name = "backup"
          secret {
            secret_name = var.secrets.backup # pgbackrest.conf: the repository (object store) and its keys
          }
        }
      }
    }
    volume_claim_template {
      metadata {
        name = "data"
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class
        resources {
          requests = { storage = each.value.storage }
        }
      }
    }
  }
}

resource "kubernetes_pod_disruption_budget_v1" "citus" {
  for_each = local.citus_roles

  metadata {
    name      = "citus-${each.key}"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.citus_labels
  }
  spec {
    # A database node is one copy of its log groups: a drain waits for the operator
    # (runbook: moving log groups off a node before its maintenance).
    max_unavailable = "0"
    selector {
      match_labels = { "app.kubernetes.io/name" = "citus", "zongzhi/citus-role" = each.key }
    }
  }
}

# Registers the coordinator and the workers (re-run after adding workers: runbook).
resource "kubernetes_job_v1" "citus_membership" {
  metadata {
    name      = "citus-membership-${var.citus.workers}"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = merge(local.citus_labels, { "zongzhi/citus-role" = "membership" })
  }
  wait_for_completion = false
  spec {
    backoff_limit = 10
    template {
      metadata {
        labels = merge(local.citus_labels, { "zongzhi/citus-role" = "membership" })
      }
      spec {
        restart_policy                  = "OnFailure"
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 999
          run_as_group    = 999
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "membership"
          image             = "${var.images["citus"].repository}@${var.images["citus"].digest}"
          image_pull_policy = "Always"
          command           = ["/bin/sh", "/scripts/membership.sh"]
          env {
            name = "PGPASSWORD"
            value_from {
              secret_key_ref {
                name = var.secrets.database
                key  = "password"
              }
            }
          }
          env {
            name  = "PSQLRC"
            value = "/dev/null"
          }
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
            name       = "scripts"
            mount_path = "/scripts"
            read_only  = true
          }
        }
        volume {
          name = "scripts"
          config_map {
            name = kubernetes_config_map_v1.citus_init.metadata[0].name
          }
        }
      }
    }
  }
}

# A named restore point on every node at once (citus_create_restore_point): the target of
# a consistent point-in-time recovery of the whole cluster (runbook).
resource "kubernetes_cron_job_v1" "citus_restore_point" {
  metadata {
    name      = "citus-restore-point"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = merge(local.citus_labels, { "zongzhi/citus-role" = "restore-point" })
  }
  spec {
    schedule           = "*/${var.citus.restore_point_every_min} * * * *"
    concurrency_policy = "Forbid"
    job_template {
      metadata {
        labels = merge(local.citus_labels, { "zongzhi/citus-role" = "restore-point" })
      }
      spec {
        backoff_limit = 1
        template {
          metadata {
            labels = merge(local.citus_labels, { "zongzhi/citus-role" = "restore-point" })
          }
          spec {
            restart_policy                  = "Never"
            automount_service_account_token = false
            security_context {
              run_as_non_root = true
              run_as_user     = 999
              run_as_group    = 999
              seccomp_profile {
                type = "RuntimeDefault"
              }
            }
            container {
              name              = "restore-point"
              image             = "${var.images["citus"].repository}@${var.images["citus"].digest}"
              image_pull_policy = "Always"
              command = ["psql", "-v", "ON_ERROR_STOP=1", "-h", local.coordinator_host, "-U", "postgres", "-d", "postgres",
              "-c", "SELECT citus_create_restore_point('zz-' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD-HH24MI'))"]
              env {
                name = "PGPASSWORD"
                value_from {
                  secret_key_ref {
                    name = var.secrets.database
                    key  = "password"
                  }
                }
              }
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
            }
          }
        }
      }
    }
  }
}

# Database nodes accept only: PgBouncer (to the coordinator), each other (Citus's own
# connections and shard moves), and the membership and restore-point jobs.
resource "kubernetes_network_policy_v1" "citus" {
  metadata {
    name      = "citus"
    namespace = kubernetes_namespace_v1.zongzhi.metadata[0].name
    labels    = local.citus_labels
  }
  spec {
    pod_selector {
      match_labels = { "app.kubernetes.io/name" = "citus" }
    }
    policy_types = ["Ingress", "Egress"]
    ingress {
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "pgbouncer" }
        }
      }
      from {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "citus" }
        }
      }
      ports {
        port     = "5432"
        protocol = "TCP"
      }
    }
    egress {
      to {
        pod_selector {
          match_labels = { "app.kubernetes.io/name" = "citus" }
        }
      }
      ports {
        port     = "5432"
        protocol = "TCP"
      }
    }
    egress { # WAL archive and base backups to the object store
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
