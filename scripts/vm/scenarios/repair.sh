. /lab/lib.sh
result repair.kernel NOT-RUN stub
