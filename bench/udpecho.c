/* A UDP echo server for the port-forwarding tests (busybox has no UDP server): udpecho PORT.
   Answers every datagram with "echo:" and the datagram. Built static at test time (gcc -static). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: udpecho PORT\n"); return 2; }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[1]));
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("udpecho"); return 1; }
    char buf[65536 + 5];
    for (;;) {
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        ssize_t n = recvfrom(s, buf + 5, sizeof buf - 5, 0, (struct sockaddr *)&peer, &len);
        if (n < 0) continue;
        memcpy(buf, "echo:", 5);
        sendto(s, buf, (size_t)n + 5, 0, (struct sockaddr *)&peer, len);
    }
}
