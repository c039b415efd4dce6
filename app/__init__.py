"""The composition root: the ``hub`` command and the processes it starts.

``cli.py`` parses the command line, loads the configuration and maps every HubError
to one line and an exit code; ``run.py`` wires the rooms below into the demo, feed,
fanout and recorder processes; ``launch.py`` turns ``[feed]`` settings into a feed
source; ``shutdown.py`` bounds and logs how each process stops. The only room that
may import all the others.
"""
