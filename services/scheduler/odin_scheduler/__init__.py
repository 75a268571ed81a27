"""The scheduler service: jobs, tasks, events and logs; the DAG engine and its executors."""
