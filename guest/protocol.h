/* Generated from src/channel/protocol.ts by `npm run gen:protocol`. Do not edit. */
#ifndef JITVM_PROTOCOL_H
#define JITVM_PROTOCOL_H

#define PROTOCOL_VERSION 1
#define MIN_PROTOCOL_VERSION 1
#define FRAME_HEADER_SIZE 12
#define MAX_PAYLOAD 262144
#define DATA_CHUNK 65536
#define INITIAL_WINDOW 1048576
#define MAX_STREAMS 64
#define AGENT_PORT_NAME "jitvm.agent"
#define AGENT_VSOCK_PORT 1024
#define AGENT_CHANNEL_ARG_SERIAL "jitvm.channel=serial"
#define AGENT_CHANNEL_ARG_VSOCK "jitvm.channel=vsock"
#define BOOT_ARG_NET "jitvm.net"
#define BOOT_ARG_ROOT "jitvm.root"
#define BOOT_ARG_OVERLAY "jitvm.overlay"
#define BOOT_ARG_MOUNT "jitvm.mount"
#define BOOT_ARG_DRIVES "jitvm.drives"
#define FLAG_FIN 1

#define MSG_HELLO 1
#define MSG_HELLO_OK 2
#define MSG_PING 3
#define MSG_PONG 4
#define MSG_ERROR 5
#define MSG_OK 6
#define MSG_EXEC 16
#define MSG_EXEC_STARTED 17
#define MSG_STDIN 18
#define MSG_STDOUT 19
#define MSG_STDERR 20
#define MSG_SIGNAL 21
#define MSG_EXIT 22
#define MSG_WINDOW 23
#define MSG_CANCEL 24
#define MSG_FILE_WRITE 32
#define MSG_FILE_READ 33
#define MSG_FILE_DATA 34
#define MSG_FILE_READ_OK 35
#define MSG_MKDIR 36
#define MSG_STAT 37
#define MSG_STAT_RESULT 38
#define MSG_LIST 39
#define MSG_LIST_RESULT 40
#define MSG_REMOVE 41
#define MSG_SHUTDOWN 48
#define MSG_SET_IDENTITY 49
#define MSG_TCP_CONNECT 64
#define MSG_TCP_ACCEPT 65
#define MSG_TCP_CONNECTED 66
#define MSG_TCP_ACCEPTED 67
#define MSG_TCP_DATA 68

#define ERR_PROTOCOL 1
#define ERR_UNSUPPORTED_VERSION 2
#define ERR_NOT_FOUND 3
#define ERR_PERMISSION 4
#define ERR_INVALID_ARGUMENT 5
#define ERR_ALREADY_EXISTS 6
#define ERR_IO 7
#define ERR_RESOURCE_LIMIT 8
#define ERR_NOT_A_DIRECTORY 9
#define ERR_IS_A_DIRECTORY 10
#define ERR_NOT_EMPTY 11
#define ERR_UNSUPPORTED 12
#define ERR_INTERNAL 13

#define CAP_EXEC 1
#define CAP_FILES 2
#define CAP_SIGNAL 4
#define CAP_SHUTDOWN 8
#define CAP_IDENTITY 16
#define CAP_TCP 32
#define IDENTITY_MIN_ENTROPY 32
#define IDENTITY_MAX_ENTROPY 512
#define IDENTITY_MAX_HOSTNAME 64
#define EXEC_FLAG_STDIN 1
#define FILE_WRITE_FLAG_MKDIRS 1
#define REMOVE_FLAG_RECURSIVE 1
#define EXIT_REASON_EXITED 0
#define EXIT_REASON_SIGNALED 1
#define EXIT_REASON_TIMED_OUT 2
#define WINDOW_STDIN 0
#define WINDOW_STDOUT 1
#define WINDOW_STDERR 2
#define WINDOW_FILE 3
#define WINDOW_TCP 4
#define ENTRY_FILE 0
#define ENTRY_DIRECTORY 1
#define ENTRY_SYMLINK 2
#define ENTRY_OTHER 3

#endif
