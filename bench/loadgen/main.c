/* bench/loadgen/main.c: va-loadgen twilio|realtime|relay|streams [options] (see lg.h). */
#include "lg.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "twilio") == 0)
        return lg_twilio_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "realtime") == 0)
        return lg_realtime_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "relay") == 0)
        return lg_relay_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "streams") == 0)
        return lg_streams_main(argc - 1, argv + 1);
    fputs("usage: va-loadgen twilio|realtime|relay|streams [options]: see bench/loadgen/*.c\n",
          stderr);
    return 2;
}
