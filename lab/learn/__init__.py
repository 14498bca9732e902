"""Learning the guide by hand: `invoke explain`, `invoke guide` and the manual commands they show.

    manual  a step's manual commands as data          explain / explain_pki  each step's commands, for --explain
    guide   the guide as Markdown and a bash script
"""
