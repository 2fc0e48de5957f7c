// The partition Apache Kafka's Java producer picks for a keyed record: the test oracle for hotchat's
// keying (e2e/tests/contract/keying.rs). Run from source by the JDK with Kafka's jars on the class path:
//   java -cp 'libs/*' JavaPartitioner.java PARTITIONS KEY...
import java.nio.charset.StandardCharsets;
import org.apache.kafka.clients.producer.internals.BuiltInPartitioner;

public class JavaPartitioner {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            System.out.println(BuiltInPartitioner.partitionForKey(key, partitions));
        }
    }
}
