//! One live connection to the broker: named, with a confirm channel on which the exchange has
//! been declared, and the single task that writes publishes to that channel.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use futures_util::FutureExt;
use lapin::message::BasicReturnMessage;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind, PublisherConfirm,
};
use tokio::sync::{mpsc, oneshot};
use tracing::error;

use super::config::{claim_queue, AmqpConfig, QueueSpec, QUEUE_BINDING};
use super::publisher::lock;
use super::returns::{id_key, Delivered, Ledger};
use crate::error::SinkError;

/// The AMQP reply code of `ACCESS_REFUSED`.
const ACCESS_REFUSED: u16 = 403;
/// The AMQP reply code of `RESOURCE_LOCKED`: an exclusive queue held by another connection.
const RESOURCE_LOCKED: u16 = 405;
/// The AMQP reply code of `PRECONDITION_FAILED`: a queue that exists with other arguments.
const PRECONDITION_FAILED: u16 = 406;

/// The outcome of one publish: the broker's confirmation, or why there is none.
pub(crate) type Reply = oneshot::Sender<lapin::Result<Confirmation>>;

/// One publish, handed to the link's writer task.
pub(crate) struct PublishRequest {
    pub(crate) routing_key: &'static str,
    pub(crate) body: Arc<[u8]>,
    pub(crate) properties: BasicProperties,
    /// Gets the broker's confirmation, or lapin's error. Dropped unanswered when the writer
    /// stops: the caller treats that as a lost connection.
    pub(crate) reply: Reply,
}

/// A connection that is ready for publishing.
#[derive(Debug)]
pub(crate) struct Link {
    /// Increases with every connection, so a `deliver` that failed on one connection waits for
    /// a newer one instead of retrying on the same broken one.
    pub(crate) generation: u64,
    /// `host:port` of the node it is connected to: shown in `/health`, metrics and logs.
    pub(crate) address: String,
    pub(crate) connection: Connection,
    pub(crate) channel: Channel,
    /// The writer task's queue.
    publish: mpsc::Sender<PublishRequest>,
}

impl Link {
    /// Connects to address `index`, opens a confirm channel and declares the exchange.
    ///
    /// # Errors
    /// [`SinkError::AccessRefused`] for bad credentials, [`SinkError::Transport`] otherwise.
    pub(crate) async fn open(
        config: &AmqpConfig,
        index: usize,
        generation: u64,
    ) -> Result<Self, SinkError> {
        let transport = |source: lapin::Error| classify(config, index, source);
        let properties = ConnectionProperties::default()
            .with_connection_name(config.connection_name().into())
            .with_client_property("instance_id".into(), config.instance_id.as_str().into())
            .with_client_property(
                "watched_directory".into(),
                config.watched_directory.as_str().into(),
            )
            .with_client_property("product".into(), "file-watcher".into())
            .with_client_property("version".into(), env!("CARGO_PKG_VERSION").into());
        let connection = Connection::connect_uri(config.uri(index), properties)
            .await
            .map_err(transport)?;
        let channel = connection.create_channel().await.map_err(transport)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(transport)?;
        channel
            .exchange_declare(
                config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(transport)?;
        if let Some(queue) = &config.queue {
            declare_queue(&connection, config, index, queue).await?;
        }

        // Capacity `window`: at most that many `deliver` calls hold a permit, so the queue never
        // makes a caller wait for long.
        let (publish, requests) = mpsc::channel(config.window.max(1));
        tokio::spawn(write_publishes(
            channel.clone(),
            config.exchange.as_str().into(),
            requests,
        ));
        Ok(Self {
            generation,
            address: config.address(index),
            connection,
            channel,
            publish,
        })
    }

    /// Tries to claim the instance's id: declares the exclusive claim queue on a channel of its
    /// own (a refused declare closes the channel it ran on, and the confirm channel must live).
    /// `Ok(true)`: this connection holds the claim until it closes. `Ok(false)`: another live
    /// connection holds it.
    ///
    /// # Errors
    /// [`SinkError::ClaimRefused`] when the broker refuses the declare for another reason (no
    /// permission to configure the queue), [`SinkError::Transport`] when the connection fails.
    pub(crate) async fn claim(&self, config: &AmqpConfig, index: usize) -> Result<bool, SinkError> {
        let queue = claim_queue(&config.instance_id);
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(|e| classify(config, index, e))?;
        let declared = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    durable: false,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match declared {
            Ok(_) => {
                let _ = channel.close(200, ShortString::from("claimed")).await;
                Ok(true)
            }
            Err(e) => match e.kind() {
                ErrorKind::ProtocolError(p) if p.get_id() == RESOURCE_LOCKED => Ok(false),
                ErrorKind::ProtocolError(p) if self.connection.status().connected() => {
                    Err(SinkError::ClaimRefused {
                        queue,
                        url: config.redacted_at(index),
                        reason: p.get_message().to_string(),
                    })
                }
                _ => Err(classify(config, index, e)),
            },
        }
    }

    /// Whether lapin still considers both the connection and the channel usable.
    pub(crate) fn is_healthy(&self) -> bool {
        self.connection.status().connected() && self.channel.status().connected()
    }

    /// Queues one publish for the writer task.
    ///
    /// # Errors
    /// Gives the request back when the writer has stopped (the connection is gone).
    pub(crate) async fn publish(
        &self,
        request: PublishRequest,
    ) -> Result<(), mpsc::error::SendError<PublishRequest>> {
        self.publish.send(request).await
    }
}

/// The only task that calls `basic_publish` on a channel. lapin numbers a publish for confirms
/// (the delivery tag) before it queues the frames, so two tasks publishing at once on one
/// channel could swap numbers, and a Nack would then be reported for the wrong message. One
/// writer keeps the numbering and the wire order identical.
///
/// It also awaits the confirms and answers each caller once with the outcome. A caller is thus
/// woken once per message, which matters on a small machine shared with the broker: thread
/// wake-ups are most of the client's cost. Returns go to their own message through the
/// [`Ledger`] (see `returns`): lapin may attach one to another message's confirmation.
async fn write_publishes(
    channel: Channel,
    exchange: ShortString,
    mut requests: mpsc::Receiver<PublishRequest>,
) {
    let options = BasicPublishOptions {
        mandatory: true,
        immediate: false,
    };
    // Both halves below run in this one task (`join!`): the lock is never contended, and
    // neither holds it across an `.await`.
    let answers: Mutex<Answers> = Mutex::default();
    let ledger = &answers;
    let publisher = channel.clone();
    // Unbounded, but never longer than the callers' window: each entry is a caller waiting.
    // `None` for a publish withdrawn (it never reached the broker), so that the confirm half
    // still learns every number in order.
    let (sent, unconfirmed) = mpsc::unbounded_channel::<(u64, Option<PublisherConfirm>)>();
    let publish = async move {
        let publisher = &publisher;
        let exchange = &exchange;
        let mut seq: u64 = 0;
        // Publishes whose frames lapin has queued, each waiting for its io loop to write them,
        // oldest first. lapin numbers a publish and queues its frames in the first poll of
        // `basic_publish`, before its one await (for the write). Polling each once here, in
        // request order, keeps the numbering and the wire order those of the requests, while
        // the io loop writes every publish queued meanwhile in one wake-up: awaiting each
        // write before the next publish cost two thread switches per message.
        let mut writing: VecDeque<(u64, Sending<'_>)> = VecDeque::new();
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                result = written(&mut writing), if !writing.is_empty() => {
                    if let Some((n, _)) = writing.pop_front() {
                        settle(ledger, &sent, n, result);
                    }
                    // Those written by the same wake-up of the io loop.
                    while let Some((_, sending)) = writing.front_mut() {
                        let Some(result) = sending.as_mut().now_or_never() else {
                            break;
                        };
                        if let Some((n, _)) = writing.pop_front() {
                            settle(ledger, &sent, n, result);
                        }
                    }
                }
                request = requests.recv(), if open => {
                    let Some(request) = request else {
                        open = false;
                        continue;
                    };
                    if request.reply.is_closed() {
                        // The caller gave up (shutdown): do not send what nobody waits for.
                        continue;
                    }
                    let id = request
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|id| id_key(id.as_str()));
                    seq += 1;
                    lock(ledger).sent(seq, id, request.reply);
                    let body = request.body;
                    let properties = request.properties;
                    let routing_key = request.routing_key;
                    let mut sending: Sending<'_> = Box::pin(async move {
                        publisher
                            .basic_publish(
                                exchange.clone(),
                                routing_key.into(),
                                options,
                                &body,
                                properties,
                            )
                            .await
                    });
                    // The first poll, now: it numbers the publish and queues its frames.
                    match std::future::poll_fn(|cx| Poll::Ready(sending.as_mut().poll(cx))).await {
                        Poll::Ready(result) if writing.is_empty() => {
                            settle(ledger, &sent, seq, result);
                        }
                        // Failed at once (the channel is closing): its number still reaches
                        // the confirm half after the older ones.
                        Poll::Ready(result) => {
                            writing.push_back((seq, Box::pin(std::future::ready(result))));
                        }
                        Poll::Pending => writing.push_back((seq, sending)),
                    }
                }
                else => break,
            }
        }
    };
    tokio::join!(publish, await_confirms(&channel, ledger, unconfirmed));
}

/// A `basic_publish` whose frames are queued, waiting for the io loop to write them.
type Sending<'a> = Pin<Box<dyn Future<Output = lapin::Result<PublisherConfirm>> + Send + 'a>>;

/// The oldest publish in `writing`, awaited until its frames are written.
fn written<'a, 'b>(
    writing: &'a mut VecDeque<(u64, Sending<'b>)>,
) -> impl Future<Output = lapin::Result<PublisherConfirm>> + use<'a, 'b> {
    std::future::poll_fn(move |cx| match writing.front_mut() {
        Some((_, sending)) => sending.as_mut().poll(cx),
        // Guarded by the caller: never polled on an empty queue.
        None => Poll::Pending,
    })
}

/// Hands publish `n`'s confirm to the confirm half, or answers its caller with lapin's error.
fn settle(
    ledger: &Mutex<Answers>,
    sent: &mpsc::UnboundedSender<(u64, Option<PublisherConfirm>)>,
    n: u64,
    result: lapin::Result<PublisherConfirm>,
) {
    match result {
        Ok(confirm) => {
            // The receiver lives in the same task until `sent` is dropped.
            let _ = sent.send((n, Some(confirm)));
        }
        Err(e) => {
            if let Some(reply) = lock(ledger).withdraw(n) {
                let _ = reply.send(Err(e));
            }
            let _ = sent.send((n, None));
        }
    }
}

/// Awaits the confirms of [`write_publishes`], oldest first, as the old single-queue writer
/// did (the broker confirms in order, often many at once), and answers each caller once with
/// its confirmation and its own return.
async fn await_confirms(
    channel: &Channel,
    ledger: &Mutex<Answers>,
    mut unconfirmed: mpsc::UnboundedReceiver<(u64, Option<PublisherConfirm>)>,
) {
    let mut queue: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let mut due = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            result = oldest(&mut queue), if !queue.is_empty() => {
                if let Some((n, _)) = queue.pop_front() {
                    note(&mut lock(ledger), n, result);
                }
                drain(&mut queue, ledger);
                // lapin resolves the confirmations of one `basic.ack` while it holds its lock
                // on the channel's acknowledgements. Asking for the last pending confirm takes
                // that lock, so once it returns, every acknowledgement whose confirmations were
                // noted is finished; once a look after it finds nothing new, they can be
                // sealed. Only the lock is wanted: the future is dropped unfinished, and
                // nothing here uses `wait_for_confirms` otherwise.
                while lock(ledger).has_unsealed() {
                    drop(channel.wait_for_confirms().now_or_never());
                    if drain(&mut queue, ledger) == 0 {
                        lock(ledger).seal();
                    }
                }
            }
            next = unconfirmed.recv(), if open => match next {
                Some((n, confirm)) => {
                    if let Some(confirm) = confirm {
                        queue.push_back((n, confirm));
                    }
                    lock(ledger).submitted(n);
                }
                None => open = false,
            },
            else => break,
        }
        lock(ledger).answers(&mut due);
        for (reply, outcome, returned) in due.drain(..) {
            answer(reply, outcome, returned);
        }
    }
}

/// The oldest confirm in `queue`, awaited where it lies.
fn oldest(
    queue: &mut VecDeque<(u64, PublisherConfirm)>,
) -> impl Future<Output = lapin::Result<Confirmation>> + '_ {
    std::future::poll_fn(move |cx| match queue.front_mut() {
        Some((_, confirm)) => Pin::new(confirm).poll(cx),
        // Guarded by the caller: never polled on an empty queue.
        None => Poll::Pending,
    })
}

/// Notes the confirms at the front of `queue` that are resolved already; how many.
fn drain(queue: &mut VecDeque<(u64, PublisherConfirm)>, ledger: &Mutex<Answers>) -> usize {
    let mut noted = 0;
    while let Some((_, confirm)) = queue.front_mut() {
        let Some(result) = confirm.now_or_never() else {
            break;
        };
        if let Some((n, _)) = queue.pop_front() {
            note(&mut lock(ledger), n, result);
            noted += 1;
        }
    }
    noted
}

/// Puts one resolved confirmation in `ledger`, its return aside for the message it names.
fn note(ledger: &mut Answers, n: u64, result: lapin::Result<Confirmation>) {
    let (outcome, returned) = match result {
        Ok(Confirmation::Ack(returned)) => (Ok(Confirmation::Ack(None)), returned),
        Ok(Confirmation::Nack(returned)) => (Ok(Confirmation::Nack(None)), returned),
        other => (other, None),
    };
    let returned = returned.map(|r| {
        let id = r
            .properties
            .message_id()
            .as_ref()
            .map(|id| id_key(id.as_str()));
        (id, r)
    });
    if let Delivered::Stray(r) = ledger.resolved(n, outcome, returned) {
        // A return after its message's ack: RabbitMQ sends a return before the ack, so this
        // would be a message confirmed to its caller although no queue took it. Say so loudly.
        error!(
            routing_key = %r.delivery.routing_key,
            message_id = ?r.properties.message_id(),
            "RabbitMQ returned a message after it was confirmed; it was reported delivered \
             although no queue took it (please report this)"
        );
    }
}

/// The callers waiting for a confirm, and the returns that belong to them.
type Answers = Ledger<Reply, lapin::Result<Confirmation>, BasicReturnMessage>;

/// Answers a caller; one that left meanwhile (shutdown) does not need its answer.
fn answer(
    reply: Reply,
    outcome: lapin::Result<Confirmation>,
    returned: Option<BasicReturnMessage>,
) {
    let outcome = match (outcome, returned) {
        (Ok(Confirmation::Ack(_)), returned) => Ok(Confirmation::Ack(returned)),
        (Ok(Confirmation::Nack(_)), returned) => Ok(Confirmation::Nack(returned)),
        (other, _) => other,
    };
    let _ = reply.send(outcome);
}

/// Declares the event queue and binds it to the exchange, on a channel of its own: a refused
/// declare closes the channel it ran on, and the confirm channel must live.
///
/// # Errors
/// [`SinkError::QueueMismatch`] when the queue exists with other arguments,
/// [`SinkError::QueueRefused`] when the broker refuses it otherwise (permissions),
/// [`SinkError::Transport`] when the connection fails.
async fn declare_queue(
    connection: &Connection,
    config: &AmqpConfig,
    index: usize,
    queue: &QueueSpec,
) -> Result<(), SinkError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| classify(config, index, e))?;
    let refused = |e: lapin::Error| match e.kind() {
        ErrorKind::ProtocolError(p) if p.get_id() == PRECONDITION_FAILED => {
            SinkError::QueueMismatch {
                queue: queue.name.clone(),
                ours: queue.describe(),
                url: config.redacted_at(index),
                reason: p.get_message().to_string(),
            }
        }
        ErrorKind::ProtocolError(p) if connection.status().connected() => SinkError::QueueRefused {
            queue: queue.name.clone(),
            url: config.redacted_at(index),
            reason: p.get_message().to_string(),
        },
        _ => classify(config, index, e),
    };
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(queue.kind.as_str())),
    );
    channel
        .queue_declare(
            queue.name.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            arguments,
        )
        .await
        .map_err(refused)?;
    channel
        .queue_bind(
            queue.name.as_str().into(),
            config.exchange.as_str().into(),
            QUEUE_BINDING.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(refused)?;
    let _ = channel.close(200, ShortString::from("declared")).await;
    Ok(())
}

/// Tells a refused login apart from every other failure.
fn classify(config: &AmqpConfig, index: usize, source: lapin::Error) -> SinkError {
    if let ErrorKind::ProtocolError(e) = source.kind() {
        if e.get_id() == ACCESS_REFUSED {
            return SinkError::AccessRefused {
                url: config.redacted_at(index),
                reason: e.get_message().to_string(),
            };
        }
    }
    SinkError::Transport {
        url: config.redacted_at(index),
        source,
    }
}
