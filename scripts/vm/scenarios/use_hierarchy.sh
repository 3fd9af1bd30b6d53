. /lab/lib.sh
result use_hierarchy.kernel NOT-RUN stub
