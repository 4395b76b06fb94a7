"""The application layer: no Qt. The UI and the CLI use it; it uses `core`.

* `api`: the jobs interface (`Jobs`: submit, stop, recover, delete, adopt, get, wait,
  subscribe) and `JobBoard`, the store reads and listeners both implementations share;
* `jobs`: `JobService`, the jobs followed in this process (the CLI, the job host);
* `job_host`: `JobHostClient`, the window's jobs followed in a child process over a
  `multiprocessing.connection`, and `make_job_service`, what the window uses;
* `live_data`: lines and samples in columns, as the window shows them.
"""
