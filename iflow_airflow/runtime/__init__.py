"""What runs inside Airflow's components: pools, listeners, monitoring, the plugin, local runs."""
