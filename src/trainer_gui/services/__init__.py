"""The application layer: no Qt. Job services (in this process or the job host) and the live
data the window shows. The UI and the CLI use it; it uses `core`."""
