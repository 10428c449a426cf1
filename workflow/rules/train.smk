rule train_supervised:
    input:
        unpack(RULES.inputs("train_supervised")),
    output:
        RULES.outputs("train_supervised"),
    conda:
        "../../environment.yml"
    log:
        RULES.log("train_supervised"),
    shell:
        RULES.shell("train_supervised")
