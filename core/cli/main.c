/* core/cli/main.c — the serbench executable: dispatch to one file per subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "serbench %s — speech emotion recognition experiments from YAML configs\n"
        "\n"
        "usage:\n"
        "  serbench run CONFIG [key=value ...] [--dry-run] [--jobs N] [--shard I/N] [--force]\n"
        "               [--results DIR] [--base DIR] [--threads N] [--quiet] [--verbose]\n"
        "  serbench validate CONFIG [key=value ...]   parse, resolve, check every plugin block\n"
        "  serbench plugins [NAME] [--json]           installed plugins, or one plugin's options\n"
        "  serbench corpus CONFIG [--json]            per-corpus counts by split and class\n"
        "  serbench label CONFIG [--plan]             the labelling stage only; --plan shows\n"
        "                                             requests, tokens, cost; sends nothing\n"
        "  serbench encode CONFIG [--items I/N]       the feature stage only (label: --items too)\n"
        "  serbench report CONFIG [key=value ...] [--format md|csv|tex|json] [--out FILE] "
        "[--table NAME]\n"
        "  serbench plot CONFIG --out DIR [--format png|svg|both] [--dpi N]\n"
        "                                             confusion matrices, per-class F1 bars\n"
        "  serbench export predictions|metrics CONFIG --out FILE.csv\n"
        "  serbench export labels CONFIG --out FILE.csv [--format csv|melt] [--labeller L]\n"
        "                                             [--dataset D]\n"
        "  serbench agree CONFIG [--dataset D] [--split S] [--json]   labeller agreement\n"
        "  serbench compare CONFIG RUN_A RUN_B [--test NAME] [--metric M] [--resamples N]\n"
        "               [--seed S] [--alpha A] [--json]   paired bootstrap and McNemar\n"
        "  serbench merge SRC... --into DST [--dry-run] [--json] [--allow-mixed] [--partial]\n"
        "  serbench slurm CONFIG [--results DIR] [--no-submit] [--resubmit-failed]   job arrays\n"
        "  serbench embed --checkpoint DIR --out FILE.safetensors AUDIO   SSL hidden states\n"
        "  serbench version\n"
        "\n"
        "exit status: 0 success; 1 finished with failed items or runs (reported);\n"
        "2 usage, config, plugin or store error; 130 interrupted.\n"
        "docs: docs/cli.md, docs/config.md, docs/plugins.md, docs/store.md\n",
        sb_version());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run") || !strcmp(cmd, "label") || !strcmp(cmd, "encode"))
        return cmd_run(argc, argv);
    if (!strcmp(cmd, "validate"))
        return cmd_validate(argc, argv);
    if (!strcmp(cmd, "plugins"))
        return cmd_plugins(argc, argv);
    if (!strcmp(cmd, "report"))
        return cmd_report(argc, argv);
    if (!strcmp(cmd, "plot"))
        return cmd_plot(argc, argv);
    if (!strcmp(cmd, "merge"))
        return cmd_merge(argc, argv);
    if (!strcmp(cmd, "export") && argc > 2 && !strcmp(argv[2], "labels")) {
        /* `serbench export labels CONFIG ...`: drop KIND so CONFIG parses as usual. */
        for (int i = 2; i + 1 < argc; i++)
            argv[i] = argv[i + 1];
        return cmd_export_labels(argc - 1, argv);
    }
    if (!strcmp(cmd, "export"))
        return cmd_export(argc, argv);
    if (!strcmp(cmd, "agree"))
        return cmd_agree(argc, argv);
    if (!strcmp(cmd, "compare"))
        return cmd_compare(argc, argv);
    if (!strcmp(cmd, "slurm"))
        return cmd_slurm(argc, argv);
    if (!strcmp(cmd, "corpus"))
        return cmd_corpus(argc, argv);
    if (!strcmp(cmd, "embed"))
        return cmd_embed(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("serbench %s (plugin ABI %d.%d)\n", sb_version(), SB_ABI_MAJOR, SB_ABI_MINOR);
        return EXIT_OK;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return EXIT_OK;
    }
    fprintf(stderr, "serbench: error: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
