"""FogPark's evaluation in SUMO (``fogpark-fog evaluate``; needs the ``sim`` extra).

``lot_document``: the lot file's dict form; ``sumo_net``: lot ⇄ SUMO network;
``traci_runner``: SUMO with the fog engine in the loop; ``sweep_driver``: the
traditional search one decision at a time; ``sweeps``: what runs and how it
is summarised; ``revenue`` and ``mcpr_eval``: the pricing and multi-lot
studies (pure Python); ``stats``: means with t intervals; ``report``: the
files; ``cli``: the command. Only ``sumo_net``, ``traci_runner`` and
``report`` import SUMO or matplotlib, and only when called.
"""
